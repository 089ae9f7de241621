#!/usr/bin/env python3
"""Write N row events of the work-item app as cdc-json lines, in
transactions of 1 to 8 changes, to stdout (bench/filter.sh uses it).

    bench/gen_events.py N [SEED]

Tables and operations are mixed as the app's are (work items, tasks,
comments, an audit log, users, watchers; 30% inserts, 60% updates with the
old status, 10% deletes); values are short text, e-mails, timestamps and
numbers. The same N and SEED always give the same bytes.
"""
import random, sys
n = int(sys.argv[1])
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
tables = ["workitems", "tasks", "comments", "audit_log", "users", "item_watchers"]
weights = [30, 25, 20, 15, 5, 5]
statuses = ["todo", "doing", "review", "done"]
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon".split()
out = sys.stdout
i = 0; tx = 0; lsn = 0x16B3748
while i < n:
    tx += 1
    per = random.randint(1, 8)
    commit = lsn + per * 0x200 + 0x100
    ts = "2026-11-24T14:%02d:%02d.%06dZ" % (tx // 3600 % 60, tx // 60 % 60, tx % 1000000)
    out.write('{"op":"begin","xid":%d,"lsn":"0/%X","commit_lsn":"0/%X","ts":"%s"}\n' % (1000 + tx, lsn, commit, ts))
    for j in range(per):
        t = random.choices(tables, weights)[0]
        op = random.choices(["insert", "update", "delete"], [3, 6, 1])[0]
        rid = random.randint(1, 100000)
        title = " ".join(random.choice(words) for _ in range(random.randint(3, 9)))
        st = random.choice(statuses)
        row = '{"id":%d,"title":"%s","status":"%s","assignee":"user%d@example.com","parent_id":%d,"updated_at":"2026-11-24 14:31:06.%06d+00","priority":%d,"estimate":%.2f}' % (rid, title, st, rid % 97, rid // 10, j, rid % 5, rid / 7.0)
        head = '{"op":"%s","schema":"public","table":"%s","id":"0/%X:%d","lsn":"0/%X","xid":%d,"ts":"%s","key":{"id":%d}' % (op, t, commit, j, lsn + j * 0x200, 1000 + tx, ts, rid)
        if op == "insert":
            out.write(head + ',"new":' + row + '}\n')
        elif op == "update":
            out.write(head + ',"new":' + row + ',"old":{"id":%d,"status":"%s"}}\n' % (rid, random.choice(statuses)))
        else:
            out.write(head + ',"old":{"id":%d}}\n' % rid)
        i += 1
    out.write('{"op":"commit","xid":%d,"lsn":"0/%X","commit_lsn":"0/%X","ts":"%s"}\n' % (1000 + tx, commit + 0x30, commit, ts))
    lsn = commit + 0x30
