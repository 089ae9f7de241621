#!/usr/bin/env python3
"""Spoil a copy of a chaos run's HTTP sink log, to show check.py fails.

    mutate.py DIR OUT MODE

Copies DIR (chaos.sh --keep DIR) to OUT and changes OUT/sink.jsonl:
  drop       remove one event that arrived once only (check.py: lost 1)
  steal-id   give one event the id of another change (several changes under one id)
  rollback   add an event carrying the rolled-back value 'ROLLBACK'
  swap       swap two first deliveries of one key in one request (out of order)
Prints what it changed.
"""

import json
import shutil
import sys


def events(rec):
    body = json.loads(rec["body"])
    return body if isinstance(body, list) else [body]


def is_row(ev):
    return isinstance(ev, dict) and ev.get("op") in ("insert", "update", "delete")


def main():
    src, out, mode = sys.argv[1:4]
    shutil.copytree(src, out)
    recs = [json.loads(l) for l in open(src + "/sink.jsonl", encoding="utf-8")]
    ok = [r for r in recs if r["action"] == "200"]
    count = {}
    for r in ok:
        for ev in filter(is_row, events(r)):
            count[ev["id"]] = count.get(ev["id"], 0) + 1
    done = None
    for r in ok:
        evs = events(r)
        rows = [ev for ev in evs if is_row(ev)]
        if not rows:
            continue
        if mode == "drop":
            for i, ev in enumerate(evs):
                if is_row(ev) and count[ev["id"]] == 1:
                    del evs[i]
                    done = "dropped %s" % ev["id"]
                    break
        elif mode == "steal-id":
            # two changes of one transaction, each delivered once
            for a, b in zip(rows, rows[1:]):
                if (a["id"].rsplit(":", 1)[0] == b["id"].rsplit(":", 1)[0] and a["id"] != b["id"]
                        and count[a["id"]] == 1 and count[b["id"]] == 1):
                    done = "id %s given to %s" % (a["id"], b["id"])
                    b["id"] = a["id"]
                    break
        elif mode == "rollback" and rows[0]["op"] in ("insert", "update"):
            ev = json.loads(json.dumps(rows[0]))
            ev["new"]["val"] = "ROLLBACK"
            evs.append(ev)
            done = "a copy of %s with val ROLLBACK" % ev["id"]
        elif mode == "swap":
            seen = {}
            for i, ev in enumerate(evs):
                if not is_row(ev):
                    continue
                k = ev["key"]["id"]
                if k in seen and count[ev["id"]] == 1 and count[evs[seen[k]]["id"]] == 1:
                    j = seen[k]
                    evs[i], evs[j] = evs[j], evs[i]
                    done = "swapped %s and %s" % (evs[i]["id"], evs[j]["id"])
                    break
                seen[k] = i
        if done:
            r["body"] = json.dumps(evs)
            break
    if not done:
        sys.exit("mutate: found nothing to %s" % mode)
    with open(out + "/sink.jsonl", "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    print(done)


if __name__ == "__main__":
    main()
