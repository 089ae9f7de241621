#!/usr/bin/env python3
"""Check a cdc-json event file and print facts about it, one per line, for
the shell tests to compare exactly. Structural rules that every stream
must obey are asserted here; a violation prints "ERROR ..." and exits 1.

usage: events.py FILE [FACT...]
facts: counts, txs, commits, ids, rows SCHEMA.TABLE, event N (0-based row event index)
"""
import json
import sys
from collections import Counter


def load(path):
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                sys.exit(f"ERROR line {n}: no newline at end")
            if not line.startswith('{"op":"'):
                sys.exit(f"ERROR line {n}: op is not the first member")
            # numbers keep their text: 40.50 must not read as 40.5
            events.append(json.loads(line, parse_float=lambda t: "num:" + t))
    return events


def lsn(s):
    hi, lo = s.split("/")
    return int(hi, 16) << 32 | int(lo, 16)


def check(events):
    """begin/commit pairing, ids, increasing commits."""
    open_tx = None
    last_commit = -1
    ids = set()
    for e in events:
        op = e["op"]
        if op == "begin":
            if open_tx is not None:
                sys.exit(f"ERROR begin inside transaction {open_tx['xid']}")
            open_tx = e
            index = 0
        elif op == "commit":
            if open_tx is None or open_tx["xid"] != e["xid"] or open_tx["commit_lsn"] != e["commit_lsn"]:
                sys.exit(f"ERROR commit {e} does not match begin {open_tx}")
            if lsn(e["lsn"]) <= last_commit:
                sys.exit(f"ERROR commit lsn {e['lsn']} not increasing")
            last_commit = lsn(e["lsn"])
            open_tx = None
        elif op == "read":
            # a snapshot's row: an id of its own, counted in its transaction's sequence
            if e["id"] in ids:
                sys.exit(f"ERROR duplicate id {e['id']}")
            ids.add(e["id"])
            if open_tx is None or e["xid"] != open_tx["xid"]:
                sys.exit(f"ERROR read event {e['id']} outside its transaction")
            index += 1
        elif op in ("insert", "update", "delete", "truncate", "message", "heartbeat"):
            if e["id"] in ids:
                sys.exit(f"ERROR duplicate id {e['id']}")
            ids.add(e["id"])
            if open_tx is not None:
                want = f"{open_tx['commit_lsn']}:"
                if not e["id"].startswith(want) or e["xid"] != open_tx["xid"]:
                    sys.exit(f"ERROR event {e['id']} not of transaction {open_tx['xid']}")
                if e["id"] != want + str(index):
                    sys.exit(f"ERROR id {e['id']} out of sequence, want {want}{index}")
                index += 1
        elif op != "schema":
            sys.exit(f"ERROR unknown op {op}")
    if open_tx is not None:
        sys.exit(f"ERROR transaction {open_tx['xid']} never committed")


def main():
    events = load(sys.argv[1])
    check(events)
    rows = [e for e in events if e["op"] in ("insert", "update", "delete", "truncate", "message")]
    for fact in sys.argv[2:]:
        if fact == "counts":
            c = Counter((e["op"], e.get("schema", "") + "." + e.get("table", "")) for e in events
                        if e["op"] not in ("begin", "commit"))
            for (op, t), n in sorted(c.items()):
                print(f"{op} {t} {n}")
        elif fact == "txs":
            print(sum(1 for e in events if e["op"] == "commit"))
        elif fact == "commits":
            print(" ".join(e["lsn"] for e in events if e["op"] == "commit"))
        elif fact == "ids":
            print(len({e["id"] for e in rows}))
        elif fact.startswith("rows="):
            t = fact[5:]
            for e in rows:
                if e.get("schema", "") + "." + e.get("table", "") == t:
                    print(json.dumps({k: v for k, v in e.items() if k not in ("id", "lsn", "xid", "ts")},
                                     sort_keys=True, ensure_ascii=False))
        else:
            sys.exit(f"ERROR unknown fact {fact}")


main()
