#!/usr/bin/env python3
"""Replay cdc-json events (read, insert, update, delete, truncate) into a
state per table and key, and compare it with the tables as PostgreSQL
has them: the final table state must be explained by the read events
plus the changes. Prints facts, one per line, for the shell test to
compare exactly.

usage: snapcheck.py [--default COLUMN=JSON] CONNINFO TABLE EVENTS...
--default: a column added with a default while the events were written;
rows the events give without it have the default (as a consumer that
applies the ALTER TABLE would have them).
facts: "rows N" (in the table), "missing N" (in the table, not in the
events), "extra N" (in the events, not in the table), "differ N" (both,
other values), "reads N", "ids_reread N" (keys read in more than one file,
same snapshot), "ids_changed N" (of those, with another id)
"""
import json
import subprocess
import sys

args = sys.argv[1:]
defaults = {}
while args and args[0] == "--default":
    col, val = args[1].split("=", 1)
    defaults[col] = json.loads(val)
    args = args[2:]
conninfo, table, files = args[0], args[1], args[2:]
schema, name = table.split(".")


def key_of(e):
    return json.dumps(e["key"], sort_keys=True)


state = {}
reads = 0
seen_ids = {}          # (snapshot, key) -> (file index, id)
reread = changed = 0
for n, path in enumerate(files):
    for line in open(path, encoding="utf-8"):
        if not line.endswith("\n"):
            break   # cut short by kill -9: never acknowledged, sent again
        e = json.loads(line)
        if e.get("schema") != schema or e.get("table") != name:
            continue
        op = e["op"]
        if e.get("key") == {} and op in ("read", "insert"):
            # no key: a multiset of rows
            if op == "read":
                reads += 1
            state[len(state)] = e["new"]
            continue
        if op == "read":
            reads += 1
            k = key_of(e)
            state[k] = e["new"]
            snap = e["id"].split(":")[0]
            prev = seen_ids.get((snap, k))
            if prev and prev[0] != n:
                reread += 1
                changed += prev[1] != e["id"]
            seen_ids[(snap, k)] = (n, e["id"])
        elif op in ("insert", "update"):
            if "old" in e:
                old = {c: v for c, v in e["old"].items() if c in e["key"]}
                if old and old != e["key"]:
                    state.pop(json.dumps(old, sort_keys=True), None)
            state[key_of(e)] = e["new"]
        elif op == "delete":
            state.pop(key_of(e), None)
        elif op == "truncate":
            state.clear()

out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c",
                      "SELECT coalesce(json_agg(row_to_json(r__)), '[]') FROM %s r__" % table],
                     capture_output=True, timeout=60, check=True, text=True).stdout
rows = json.loads(out)
pk = subprocess.run(["psql", "-X", "-q", "-At", "-d", conninfo, "-c",
                     "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                     " AND a.attnum = ANY (i.indkey) WHERE i.indisprimary AND i.indrelid = '%s'::regclass"
                     " ORDER BY a.attnum" % table], capture_output=True, timeout=60, check=True,
                    text=True).stdout.split()
for r in state.values():
    for col, val in defaults.items():
        r.setdefault(col, val)
have = {}
for r in rows:
    have[json.dumps({c: r[c] for c in pk} if pk else r, sort_keys=True)] = r
if not pk:
    # no key: compare as multisets of rows
    from collections import Counter
    a = Counter(json.dumps(r, sort_keys=True) for r in rows)
    b = Counter(json.dumps(r, sort_keys=True) for r in state.values())
    print("rows", len(rows))
    print("missing", sum((a - b).values()))
    print("extra", sum((b - a).values()))
    print("differ", 0)
else:
    print("rows", len(rows))
    print("missing", sum(1 for k in have if k not in state))
    print("extra", sum(1 for k in state if k not in have))
    print("differ", sum(1 for k in have if k in state and state[k] != have[k]))
print("reads", reads)
print("ids_reread", reread)
print("ids_changed", changed)
