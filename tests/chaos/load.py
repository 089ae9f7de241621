#!/usr/bin/env python3
"""Write load for the chaos run: WORKERS connections change the rows of
items (keys 1..KEYS) until SECONDS have passed, at about RATE transactions
a second in all, reconnecting whenever the server goes away.

    load.py CONNINFO SECONDS SEED [--workers 4] [--keys 40] [--rate 80 | --commit-rate N]
            [--one-trip] [--stats FILE] [--stop-file FILE]

It stops earlier when --stop-file's FILE appears.

Transactions, chosen at random (seeded per worker): one insert, update or
delete; several changes on sorted keys; a savepoint rolled back between
kept changes; a whole transaction rolled back. Whatever is rolled back
writes the value 'ROLLBACK', which must never reach the sink. The ledger
in the database, not this program, says what committed: a commit whose
answer was lost in a crash is found there.

Pacing: each worker keeps to a seeded schedule (random gaps averaging
WORKERS/RATE s), so the time a transaction takes does not slow the rate
down while the server keeps up; after a stall (a crash-restart) it makes
up for at most one second. --commit-rate N paces on the transactions
meant to commit: about N of them a second, the rolled-back ones on top.
--one-trip sends each transaction, BEGIN to COMMIT or ROLLBACK, as one
query string (one round trip instead of one per statement), for rates the
statement-by-statement load cannot reach; the transactions are the same.

--stats FILE: a JSON object, the count of each kind of transaction done
(single, multi, savepoint, rollback), deadlock and connection_lost, and
seconds, how long the load ran.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

import psycopg2

ROLLBACK = "ROLLBACK"


def change(ex, rnd, key, val):
    """One random change of key; val is the value it writes."""
    r = rnd.random()
    if r < 0.35:
        ex("INSERT INTO items (id, val) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING", (key, val))
    elif r < 0.85:
        ex("UPDATE items SET val = %s WHERE id = %s", (val, key))
    else:
        ex("DELETE FROM items WHERE id = %s", (key,))


def one_tx(ex, rnd, keys, tag):
    """Make one random transaction's statements through ex(sql, params);
    returns its kind and whether it is to commit."""
    kind = rnd.choices(["single", "multi", "savepoint", "rollback"], [50, 20, 15, 15])[0]
    if kind == "single":
        change(ex, rnd, rnd.randint(1, keys), tag)
        return kind, True
    # sorted keys: concurrent transactions lock them in the same order
    ks = sorted(rnd.sample(range(1, keys + 1), rnd.randint(2, 6)))
    if kind == "multi":
        for k in ks:
            change(ex, rnd, k, tag)
        return kind, True
    if kind == "savepoint":
        change(ex, rnd, ks[0], tag)
        ex("SAVEPOINT s", None)
        for k in ks[1:-1] or ks[:1]:
            change(ex, rnd, k, ROLLBACK)
        ex("ROLLBACK TO SAVEPOINT s", None)
        change(ex, rnd, ks[-1], tag)
        return kind, True
    for k in ks:
        change(ex, rnd, k, ROLLBACK)
    return kind, False


def run_tx(conn, rnd, args, tag):
    """One transaction, statement by statement or in one round trip."""
    cur = conn.cursor()
    if not args.one_trip:
        kind, keep = one_tx(cur.execute, rnd, args.keys, tag)
        if keep:
            conn.commit()
        else:
            conn.rollback()
        return kind, keep
    stmts = []
    kind, keep = one_tx(lambda q, p: stmts.append(cur.mogrify(q, p).decode()), rnd, args.keys, tag)
    try:
        cur.execute("BEGIN; %s; %s" % ("; ".join(stmts), "COMMIT" if keep else "ROLLBACK"))
    except psycopg2.errors.DeadlockDetected:
        # the statements after the failed one did not run; the transaction is aborted
        cur.execute("ROLLBACK")
        raise
    return kind, keep


def worker(no, args, deadline, stats, lock):
    rnd = random.Random(args.seed * 1000 + no)
    rate = args.commit_rate or args.rate
    pace = args.workers / float(rate)
    conn = None
    i = 0
    due = time.time()
    while time.time() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        try:
            if conn is None:
                conn = psycopg2.connect(args.conninfo, connect_timeout=3)
                conn.autocommit = args.one_trip
            i += 1
            kind, keep = run_tx(conn, rnd, args, "w%d-%d" % (no, i))
            with lock:
                stats[kind] = stats.get(kind, 0) + 1
        except psycopg2.errors.DeadlockDetected:
            if not args.one_trip:
                conn.rollback()
            keep = False
            with lock:
                stats["deadlock"] = stats.get("deadlock", 0) + 1
        except (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.AdminShutdown):
            # the server went away (crash-restart): the ledger knows whether
            # the last commit made it
            with lock:
                stats["connection_lost"] = stats.get("connection_lost", 0) + 1
            try:
                conn and conn.close()
            except psycopg2.Error:
                pass
            conn = None
            time.sleep(0.2)
            continue
        if args.commit_rate and not keep:
            continue
        due += rnd.uniform(0, 2 * pace)
        now = time.time()
        due = max(due, now - 1)
        if due > now:
            time.sleep(due - now)
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("conninfo")
    ap.add_argument("seconds", type=float)
    ap.add_argument("seed", type=int)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--keys", type=int, default=40)
    rates = ap.add_mutually_exclusive_group()
    rates.add_argument("--rate", type=float, default=80)
    rates.add_argument("--commit-rate", type=float)
    ap.add_argument("--one-trip", action="store_true")
    ap.add_argument("--stats")
    ap.add_argument("--stop-file")
    args = ap.parse_args()
    start = time.time()
    deadline = start + args.seconds
    stats, lock = {}, threading.Lock()
    threads = [threading.Thread(target=worker, args=(n, args, deadline, stats, lock)) for n in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["seconds"] = round(time.time() - start, 3)
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(stats, f, sort_keys=True)
    print("load: " + " ".join("%s=%s" % kv for kv in sorted(stats.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
