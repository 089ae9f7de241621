#!/usr/bin/env python3
"""Check a chaos run (tests/chaos/chaos.sh --keep DIR) against its ground truth.

    check.py DIR

DIR holds: run.txt (seed, plugin, sink), ledger.csv (every committed change
of items, written by a trigger in the changing transaction), commits.tsv
(end LSN and xid of every committed transaction, from the server's
test_decoding), samples.txt (time, the slot's confirmed_flush_lsn, every
0.5 s), faults.tsv (kind, start, end, detail), sink.jsonl (the HTTP stub's
request log, or for rabbitmq and storage-queue what the drainer,
rabbit_drain.py or azq_drain.py, took from the queue, with the window each
message arrived in), load.json (what the load did).

It proves, and prints in a table:
  - every committed change was delivered at least once (lost = 0);
  - nothing was delivered that did not commit: no change from a rolled-back
    transaction or savepoint (their value 'ROLLBACK' never arrives) and no
    row version the ledger does not have;
  - for each key, first deliveries come in commit order;
  - one id per change across redeliveries, never two changes under one id,
    and the changes of one transaction share its commit's id prefix and
    xid, those of two transactions never;
  - the slot was never confirmed past what the sink held: for every sample
    (t, L), every change of a transaction whose end LSN is at or below L
    had arrived before t (for a queue, arrival is known to a poll: a
    message counts as late only when the poll before the one that took it
    started after t, so only a certain violation counts);
  - how long after each fault ended the first change made after that
    arrived (recovery: the whole pipeline working again end to end).
Exits 1 on any violation, 0 otherwise (2: a sink it does not know).
"""

import bisect
import csv
import json
import math
import os
import statistics
import sys


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def accepted(action):
    """Did the stub take the request (a 2xx answer)?"""
    if action in ("hang", "reset"):
        return False
    parts = action.split(":")
    if parts[0] == "slow":
        status = parts[2] if len(parts) > 2 and parts[2].isdigit() else "200"
    else:
        status = parts[0]
    return status.startswith("2")


def compact(ev):
    """What the checks need of a delivered event, as a small tuple, or None
    for events they do not look at: (op, schema, table, item, ver, val, xid,
    id, rolled_back). Holding whole events costs some kilobytes each, which
    an hour's soak cannot afford."""
    if not isinstance(ev, dict) or ev.get("op") not in ("insert", "update", "delete"):
        return None
    op = ev["op"]
    row = (ev.get("old") if op == "delete" else ev.get("new")) or {}
    rolled = row.get("val") == "ROLLBACK" or (ev.get("new") or {}).get("val") == "ROLLBACK"
    return (op, ev.get("schema"), ev.get("table"), (ev.get("key") or {}).get("id"), row.get("ver"),
            row.get("val"), ev.get("xid"), ev.get("id"), rolled)


def read_deliveries(d, sink):
    """Every change the sink accepted, in arrival order, as tuples
    (order, t_lower, t_upper, change) with change as compact() gives it:
    the sink had it by t_upper, and certainly not before t_lower."""
    out = []
    with open(os.path.join(d, "sink.jsonl"), encoding="utf-8") as f:
        for no, line in enumerate(f):
            rec = json.loads(line)
            if sink == "http":
                if not accepted(rec["action"]):
                    continue
                try:
                    body = json.loads(rec["body"])
                except ValueError:
                    continue
                events = body if isinstance(body, list) else [body]
                for pos, ev in enumerate(events):
                    c = compact(ev)
                    if c:
                        out.append(((rec["t"], no, pos), rec["t"], rec["t"], c))
            else:   # rabbitmq, storage-queue: one event per message
                try:
                    c = compact(json.loads(rec["payload"]))
                except (TypeError, ValueError):
                    continue
                if c:
                    out.append(((rec["before"], no, 0), rec["after"], rec["before"], c))
    out.sort(key=lambda x: x[0])
    return out


def main():
    d = sys.argv[1]
    run = dict(kv.split("=", 1) for kv in open(os.path.join(d, "run.txt")).read().split())
    sink = run.get("sink", "http")
    if sink not in ("http", "rabbitmq", "storage-queue"):
        print("check.py: unknown sink %r in run.txt" % sink, file=sys.stderr)
        return 2

    # ground truth
    # a change: a tuple (n, txid, item, op, ver, val, at), indexed with these
    N, TXID, ITEM, OP, VER, VAL, AT = range(7)
    ledger = {}          # (item, ver) -> change
    deleted = {}         # (item, prev_ver) -> delete change
    txs = {}             # txid -> [(item, ver) of its changes]
    with open(os.path.join(d, "ledger.csv")) as f:
        for n, txid, item, op, ver, prev_ver, val, at in csv.reader(f):
            c = (int(n), int(txid), int(item), sys.intern(op), int(ver), val, float(at))
            ledger[(c[ITEM], c[VER])] = c
            if op == "delete":
                deleted[(c[ITEM], int(prev_ver) if prev_ver else None)] = c
            txs.setdefault(c[TXID], []).append((c[ITEM], c[VER]))
    commit_lsn = {}
    with open(os.path.join(d, "commits.tsv")) as f:
        for line in f:
            lsn, xid = line.split()
            commit_lsn[int(xid)] = lsn_int(lsn)
    samples = []
    if os.path.exists(os.path.join(d, "samples.txt")):
        for line in open(os.path.join(d, "samples.txt")):
            t, lsn = line.split()
            samples.append((float(t), lsn_int(lsn)))
    faults = []
    for line in open(os.path.join(d, "faults.tsv")):
        kind, start, end, *_ = line.rstrip("\n").split("\t")
        faults.append((kind, float(start), float(end)))
    load = json.load(open(os.path.join(d, "load.json"))) if os.path.exists(os.path.join(d, "load.json")) else {}

    violations = {}

    def violation(kind, text):
        violations.setdefault(kind, []).append(text)

    # what arrived
    deliveries = read_deliveries(d, sink)
    first = {}           # (item, ver) -> (order, t_lower, t_upper)
    # ids: one per change and one commit prefix per transaction; a second
    # one is kept only when there is one (a violation)
    id_of, more_ids = {}, {}             # (item, ver) -> id; -> set of ids
    change_of_id, more_changes = {}, {}  # id -> (item, ver); -> set
    prefix_of_tx, more_prefixes = {}, {}  # txid -> id prefix; -> set
    tx_of_prefix, more_txs = {}, {}      # prefix -> txid; -> set

    def note(one, more, key, value):
        was = one.setdefault(key, value)
        if was != value:
            more.setdefault(key, {was}).add(value)

    n_rows = 0
    arrivals = []        # t_upper of every accepted change, for recovery times
    for order, lo, hi, (op, schema, table, item, ver, val, xid, eid, rolled) in deliveries:
        if table != "items":
            violation("other table delivered", "%s.%s id %s" % (schema, table, eid))
            continue
        if rolled:
            violation("rolled-back change delivered", "id %s: %s %s item %s" % (eid, op, table, item))
            continue
        c = deleted.get((item, ver)) if op == "delete" else ledger.get((item, ver))
        if c is None or c[OP] != op:
            violation("delivered but not committed", "id %s: %s item %s ver %s val %r" % (eid, op, item, ver, val))
            continue
        k = (c[ITEM], c[VER])
        n_rows += 1
        if op != "delete" and val != c[VAL]:
            violation("value differs from the ledger", "id %s: %r, ledger %r" % (eid, val, c[VAL]))
        if xid is not None and int(xid) != c[TXID] % (1 << 32):
            violation("xid differs from the ledger", "id %s: xid %s, ledger %s" % (eid, xid, c[TXID]))
        note(id_of, more_ids, k, eid)
        note(change_of_id, more_changes, eid, k)
        prefix = sys.intern(str(eid).rsplit(":", 1)[0])
        note(prefix_of_tx, more_prefixes, c[TXID], prefix)
        note(tx_of_prefix, more_txs, prefix, c[TXID])
        if k not in first:
            first[k] = (order, lo, hi)
        arrivals.append((hi, c[AT]))
    del deliveries

    # at least once
    lost = [c for k, c in ledger.items() if k not in first]
    for c in sorted(lost)[:20]:
        violation("lost", "txid %d item %d %s ver %d at %.3f" % (c[TXID], c[ITEM], c[OP], c[VER], c[AT]))
    for c in lost[20:]:
        violation("lost", "")

    # ids
    for k, ids in more_ids.items():
        violation("one change under several ids", "item %d ver %d: %s" % (k[0], k[1], sorted(ids)))
    for eid, ks in more_changes.items():
        violation("several changes under one id", "%s: %s" % (eid, sorted(ks)))
    for txid, prefixes in more_prefixes.items():
        violation("one transaction under several commit ids", "txid %d: %s" % (txid, sorted(prefixes)))
    for prefix, tids in more_txs.items():
        violation("several transactions under one commit id", "%s: %s" % (prefix, sorted(tids)))

    # per-key order of first deliveries
    by_item = {}
    for k, (order, _, _) in first.items():
        by_item.setdefault(k[0], []).append((order, k[1]))
    for item, lst in by_item.items():
        lst.sort()
        for (o1, v1), (o2, v2) in zip(lst, lst[1:]):
            if v2 < v1:
                violation("out of per-key commit order", "item %d: version %d arrived first at %.3f, after %d at %.3f"
                          % (item, v2, o2[0], v1, o1[0]))

    # the slot never ahead of the sink
    tx_end = []
    for txid, changes in txs.items():
        lsn = commit_lsn.get(txid % (1 << 32))
        if lsn is None:
            violation("committed but not in the WAL's commits", "txid %d" % txid)
            continue
        t = max(first[k][1] if k in first else math.inf for k in changes)
        tx_end.append((lsn, t, txid))
    tx_end.sort()
    prefix_max, m = [], -math.inf
    for lsn, t, txid in tx_end:
        if t > m:
            m, worst = t, txid
        prefix_max.append((lsn, m, worst))
    j, ahead = 0, 0
    for t, lsn in sorted(samples):
        while j < len(prefix_max) and prefix_max[j][0] <= lsn:
            j += 1
        if j and prefix_max[j - 1][1] > t:
            ahead += 1
            if ahead <= 5:
                when = prefix_max[j - 1][1]
                violation("slot confirmed ahead of the sink",
                          "at %.3f the slot was at %X/%X; txid %d (at or below it) %s" %
                          (t, lsn >> 32, lsn & 0xFFFFFFFF, prefix_max[j - 1][2],
                           "never arrived" if when == math.inf else "arrived at %.3f" % when))
            else:
                violation("slot confirmed ahead of the sink", "")
    if os.path.exists(os.path.join(d, "not_caught_up")):
        violation("did not catch up", "the slot never reached the last commit")

    # recovery after each fault: until the first change made after its end
    # arrived (not one that was in flight, or queued before it)
    arrivals.sort()
    rec = {}
    for kind, start, end in faults:
        i = bisect.bisect_right(arrivals, (end, math.inf))
        while i < len(arrivals) and arrivals[i][1] <= end:
            i += 1
        if i == len(arrivals):
            violation("no delivery after a fault", "%s ended at %.3f" % (kind, end))
            rec.setdefault(kind, []).append(None)
        else:
            rec.setdefault(kind, []).append(arrivals[i][0] - end)

    # the table
    def fmt(x):
        return "-" if x is None else "%.2f" % x
    print("chaos run: %s" % " ".join("%s=%s" % kv for kv in run.items()))
    print("%-16s %6s %14s %17s" % ("fault", "count", "max recovery s", "median recovery s"))
    allr = []
    for kind in sorted(rec):
        r = [x for x in rec[kind] if x is not None]
        allr += r
        print("%-16s %6d %14s %17s" % (kind, len(rec[kind]), fmt(max(r) if r else None),
                                      fmt(statistics.median(r) if r else None)))
    print("%-16s %6d %14s %17s" % ("all", len(faults), fmt(max(allr) if allr else None),
                                  fmt(statistics.median(allr) if allr else None)))
    rolled = load.get("rollback", 0)
    print()
    rows = [
        ("transactions committed", len(txs)),
        ("  rolled back whole (load)", rolled),
        ("  with a savepoint rolled back (load)", load.get("savepoint", 0)),
        ("changes committed", len(ledger)),
        ("changes delivered", len(first)),
        ("deliveries", n_rows),
        ("duplicates", n_rows - len(first)),
        ("lost", len(lost)),
        ("slot samples", len(samples)),
        ("pipeline restarts", sum(1 for _ in open(os.path.join(d, "restarts.txt"))) if os.path.exists(os.path.join(d, "restarts.txt")) else 0),
    ]
    for name, v in rows:
        print("%-38s %8d" % (name, v))
    checks = ["lost", "rolled-back change delivered", "delivered but not committed", "value differs from the ledger",
              "xid differs from the ledger", "one change under several ids", "several changes under one id",
              "one transaction under several commit ids", "several transactions under one commit id",
              "out of per-key commit order", "slot confirmed ahead of the sink", "committed but not in the WAL's commits",
              "other table delivered", "no delivery after a fault", "did not catch up"]
    print()
    for k in checks:
        print("%-44s %6d" % ("violations: " + k, len(violations.get(k, []))))
    bad = sum(len(v) for v in violations.values())
    for k, v in violations.items():
        for text in [x for x in v if x][:5]:
            print("# %s: %s" % (k, text))
    print("verdict: %s" % ("FAIL (%d violations)" % bad if bad else "PASS"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
