#!/usr/bin/env python3
"""Write load for the chaos run: WORKERS connections change the rows of
items (keys 1..KEYS) until SECONDS have passed, at about RATE transactions
a second in all, reconnecting whenever the server goes away.

    load.py CONNINFO SECONDS SEED [--workers 4] [--keys 40] [--rate 80] [--stats FILE] [--stop-file FILE]

It stops earlier when --stop-file's FILE appears.

Transactions, chosen at random (seeded per worker): one insert, update or
delete; several changes on sorted keys; a savepoint rolled back between
kept changes; a whole transaction rolled back. Whatever is rolled back
writes the value 'ROLLBACK', which must never reach the sink. The ledger
in the database, not this program, says what committed: a commit whose
answer was lost in a crash is found there.
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


def change(cur, rnd, key, val):
    """One random change of key; val is the value it writes."""
    r = rnd.random()
    if r < 0.35:
        cur.execute("INSERT INTO items (id, val) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING", (key, val))
    elif r < 0.85:
        cur.execute("UPDATE items SET val = %s WHERE id = %s", (val, key))
    else:
        cur.execute("DELETE FROM items WHERE id = %s", (key,))


def one_tx(cur, rnd, keys, tag, stats):
    kind = rnd.choices(["single", "multi", "savepoint", "rollback"], [50, 20, 15, 15])[0]
    if kind == "single":
        change(cur, rnd, rnd.randint(1, keys), tag)
        return kind, True
    # sorted keys: concurrent transactions lock them in the same order
    ks = sorted(rnd.sample(range(1, keys + 1), rnd.randint(2, 6)))
    if kind == "multi":
        for k in ks:
            change(cur, rnd, k, tag)
        return kind, True
    if kind == "savepoint":
        change(cur, rnd, ks[0], tag)
        cur.execute("SAVEPOINT s")
        for k in ks[1:-1] or ks[:1]:
            change(cur, rnd, k, ROLLBACK)
        cur.execute("ROLLBACK TO SAVEPOINT s")
        change(cur, rnd, ks[-1], tag)
        return kind, True
    for k in ks:
        change(cur, rnd, k, ROLLBACK)
    return kind, False


def worker(no, args, deadline, stats, lock):
    rnd = random.Random(args.seed * 1000 + no)
    pace = args.workers / float(args.rate)
    conn = None
    i = 0
    while time.time() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        try:
            if conn is None:
                conn = psycopg2.connect(args.conninfo, connect_timeout=3)
            i += 1
            cur = conn.cursor()
            kind, keep = one_tx(cur, rnd, args.keys, "w%d-%d" % (no, i), stats)
            if keep:
                conn.commit()
            else:
                conn.rollback()
            with lock:
                stats[kind] = stats.get(kind, 0) + 1
        except psycopg2.errors.DeadlockDetected:
            conn.rollback()
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
        time.sleep(rnd.uniform(0, 2 * pace))
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("conninfo")
    ap.add_argument("seconds", type=float)
    ap.add_argument("seed", type=int)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--rate", type=float, default=80)
    ap.add_argument("--stats")
    ap.add_argument("--stop-file")
    args = ap.parse_args()
    deadline = time.time() + args.seconds
    stats, lock = {}, threading.Lock()
    threads = [threading.Thread(target=worker, args=(n, args, deadline, stats, lock)) for n in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(stats, f, sort_keys=True)
    print("load: " + " ".join("%s=%d" % kv for kv in sorted(stats.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
