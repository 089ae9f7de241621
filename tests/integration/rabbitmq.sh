#!/usr/bin/env bash
# test: timeout 480
# cdc-publish --target rabbitmq against a real RabbitMQ broker (management
# HTTP API): what it acknowledges is exactly what the broker confirmed and
# routed, refusals stop it (or go to the dead-letter file), a full queue is
# waited out, bad credentials stop it without leaking them; and end to end
# with PostgreSQL: every committed change arrives exactly once, and after a
# kill -9 at least once, exactly once after dropping repeated message ids.
# The broker is a throwaway node (tests/lib/rabbitmq.sh) on free loopback
# ports; about 45 s in all, broker start and stop included.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/rabbitmq.sh"
source "$TOP/tests/lib/pgcluster.sh"
PUBLISH=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rabbit_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
HERE=$TOP/tests/integration
export RMQ=guest:guest		# cdc-publish --basic-env RMQ

# A port found free can be taken before the node binds it (tests run side
# by side): hold the distribution port rabbit_start will pick first (the
# quickest to fail) and see it start again on other ports.
_rabbit_pick_ports
read -r p_amqp p_mgmt p_dist _ <<<"$_RABBIT_PORTS"
timeout 120 python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(120)' "$p_dist" &
holder=$!
listening() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for 10 listening "$p_dist" || fail "a test listener holds port $p_dist"
if ! RABBIT_PORTS_FIRST="$p_amqp $p_mgmt $p_dist" rabbit_start 2>"$T/rabbit.err"; then
	fail "RabbitMQ starts" "$(head -c 2000 "$T/rabbit.err")"
	done_testing
	exit 1
fi
pass "RabbitMQ starts on 127.0.0.1 with the management API ($RABBIT_URL)"
like "$(cat "$T/rabbit.err")" "port $p_dist \(dist\) was taken before the node could bind it, starting again on other ports" \
	"a port taken before the node bound it: rabbit_start says so and starts again"
if [ "$(cat "$RABBIT_DIR/dist.port")" != "$p_dist" ] && listening "${RABBIT_URL##*:}"; then
	pass "the node runs on other ports"
else
	fail "the node runs on other ports" "dist $(cat "$RABBIT_DIR/dist.port"), held $p_dist"
fi
kill "$holder" 2>/dev/null
wait_exit "$holder" 5

# check.py MODE ...: compares queue contents (rabbit_queue_get JSON) with event files
cat >"$T/check.py" <<'EOF'
import json, sys

def lsn(s):
    hi, lo = s.split("/")
    return int(hi, 16) << 32 | int(lo, 16)

def lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]

def queue(*paths):
    msgs = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            msgs += json.load(f)
    return msgs

ROWS = ("insert", "update", "delete", "truncate", "message")

def rowkey(ev):
    return (ev.get("schema"), ev.get("table"), json.dumps(ev.get("key"), sort_keys=True))

def ref_rows(path):
    """row events of a reference stream: id -> line, list of ids in order, id -> commit end lsn"""
    byid, order, end = {}, [], {}
    for l in lines(path):
        ev = json.loads(l)
        if ev["op"] == "commit":
            for i in pending:
                end[i] = lsn(ev["lsn"])
        elif ev["op"] == "begin":
            pending = []
        elif ev["op"] in ROWS:
            byid[ev["id"]] = l
            order.append(ev["id"])
            pending.append(ev["id"])
    return byid, order, end

def per_key_order(ids, byid):
    """for every row, the ids in the order given: a dict key -> [ids]"""
    seq = {}
    for i in ids:
        seq.setdefault(rowkey(json.loads(byid[i])), []).append(i)
    return seq

def props_ok(m, rk):
    p = m["properties"]
    return (p.get("delivery_mode") == 2 and p.get("content_type") == "application/json" and
            m["routing_key"] == rk and m["payload_encoding"] == "string")

mode = sys.argv[1]
if mode == "exact":
    # QUEUE EVENTS ROUTING_KEY: the queue holds exactly the non-marker lines, in order
    msgs, want, rk = queue(sys.argv[2]), [l for l in lines(sys.argv[3])
        if json.loads(l)["op"] not in ("begin", "commit")], sys.argv[4]
    if len(msgs) != len(want):
        sys.exit(f"{len(msgs)} messages, want {len(want)}")
    for n, (m, l) in enumerate(zip(msgs, want)):
        ev = json.loads(l)
        if m["payload"] != l:
            sys.exit(f"message {n}: payload {m['payload']!r}, want {l!r}")
        if m["properties"].get("message_id") != ev.get("id", ev.get("lsn")):
            sys.exit(f"message {n}: message_id {m['properties'].get('message_id')!r}, want {ev.get('id')!r}")
        if not props_ok(m, rk):
            sys.exit(f"message {n}: properties {m['properties']} routing_key {m['routing_key']}")
    print("ok")
elif mode == "once":
    # QUEUE REF ROUTING_KEY: every committed row change exactly once, exact payload, per-key order
    msgs, (byid, order, end), rk = queue(sys.argv[2]), ref_rows(sys.argv[3]), sys.argv[4]
    rows = [m for m in msgs if json.loads(m["payload"])["op"] in ROWS]
    got = [m["properties"].get("message_id") for m in rows]
    facts = [f"rows {len(rows)} of {len(order)}", f"distinct {len(set(got))}",
             f"missing {len(set(order) - set(got))}", f"unknown {len(set(got) - set(order))}",
             f"payload mismatches {sum(1 for m, i in zip(rows, got) if byid.get(i) != m['payload'])}",
             f"bad properties {sum(1 for m in msgs if not props_ok(m, rk))}"]
    want_seq = per_key_order(order, byid)
    got_seq = per_key_order([i for i in got if i in byid], byid)
    facts.append(f"keys out of order {sum(1 for k in want_seq if got_seq.get(k) != want_seq[k])}")
    facts.append(f"in commit order {'yes' if got == order else 'no'}")
    print("\n".join(facts))
elif mode == "restart":
    # RUN1 RUN2 REF CONFIRMED ROUTING_KEY: a kill -9 between run 1 and run 2
    run1, run2, (byid, order, end) = queue(sys.argv[2]), queue(sys.argv[3]), ref_rows(sys.argv[4])
    confirmed, rk = lsn(sys.argv[5]), sys.argv[6]
    r1 = [m["properties"].get("message_id") for m in run1 if json.loads(m["payload"])["op"] in ROWS]
    r2 = [m["properties"].get("message_id") for m in run2 if json.loads(m["payload"])["op"] in ROWS]
    seen, dedup = set(), []
    for i in r1 + r2:
        if i not in seen:
            seen.add(i)
            dedup.append(i)
    acked = [i for i in order if end[i] <= confirmed]
    want_seq, got_seq = per_key_order(order, byid), per_key_order([i for i in dedup if i in byid], byid)
    facts = [
        f"run 1 delivered some but not all: {'yes' if 0 < len(set(r1)) < len(order) else 'no (%d)' % len(set(r1))}",
        f"run 1 repeats {len(r1) - len(set(r1))}",
        f"slot moved past an acknowledged commit: {'yes' if acked else 'no'}",
        # the slot never passed what the broker had confirmed
        f"acknowledged but not in the queue {len(set(acked) - set(r1))}",
        # the restart resumes right after the slot: no acknowledged change again, nothing missed
        f"run 2 repeats an acknowledged change {len(set(r2) & set(acked))}",
        f"run 2 is the unacknowledged tail {'yes' if sorted(r2) == sorted(i for i in order if end[i] > confirmed) else 'no'}",
        f"missing {len(set(order) - seen)}",
        f"unknown {len(seen - set(order))}",
        f"deduplicated is the committed set {'yes' if sorted(dedup) == sorted(order) else 'no'}",
        f"payload mismatches {sum(1 for m in run1 + run2 if json.loads(m['payload'])['op'] in ROWS and byid.get(m['properties'].get('message_id')) != m['payload'])}",
        f"bad properties {sum(1 for m in run1 + run2 if not props_ok(m, rk))}",
        f"keys out of order {sum(1 for k, v in want_seq.items() if got_seq.get(k) != v)}",
    ]
    print("\n".join(facts))
    print(f"# run 1 {len(r1)}, run 2 {len(r2)}, acknowledged before the kill {len(acked)}, repeats {len(r1) + len(r2) - len(seen)}", file=sys.stderr)
elif mode == "deadletter":
    # DEAD EVENTS: each refused event is in the file, as it came plus a dead_letter member
    dead, want = lines(sys.argv[2]), [l for l in lines(sys.argv[3])
        if json.loads(l)["op"] not in ("begin", "commit")]
    if len(dead) != len(want):
        sys.exit(f"{len(dead)} dead letters, want {len(want)}")
    for d, l in zip(dead, want):
        ev = json.loads(d)
        dl = ev.pop("dead_letter", None)
        if ev != json.loads(l) or not d.startswith(l[:-1]) or not dl or dl.get("status") != 200:
            sys.exit(f"dead letter {d!r} is not {l!r} with a dead_letter member of status 200")
    print("ok")
EOF
check() { python3 "$T/check.py" "$@"; }
commits() { python3 "$HERE/events.py" "$1" commits | tr ' ' '\n'; }
errline() { grep -m1 'level=error' "$1"; }

# pub NAME INPUT [OPTION...]: cdc-publish --target rabbitmq with its own ack
# FIFO read into $T/NAME.acks; RC its exit status, stderr in $T/NAME.err
pub() {
	local name=$1 input=$2 catpid rc
	shift 2
	rm -f "$T/$name.fifo"
	mkfifo -m 600 "$T/$name.fifo"
	cat "$T/$name.fifo" >"$T/$name.acks" &
	catpid=$!
	timeout -k 5 60 "$PUBLISH" --target rabbitmq --basic-env RMQ --ack-fifo "$T/$name.fifo" "$@" \
		"$RABBIT_URL" <"$input" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	wait_exit "$catpid" 3	# EOF once cdc-publish closed it; killed if it never opened it
	RC=$rc
}

# ------------------------------------------------------------ (a) 20 events, in order
# four transactions from a file; the payloads need escaping on the way into JSON
python3 - "$T/a.jsonl" <<'EOF'
import json, sys
out, lsn, row = [], 0x3000000, 0
def f(v): return "%X/%X" % (v >> 32, v & 0xffffffff)
for xid, ops in enumerate([["insert"] * 6, ["update", "insert", "update", "delete", "insert"],
                           ["update"] * 4 + ["delete"], ["insert", "update", "delete", "insert"]], 800):
    commit = lsn + 0x100 * (len(ops) + 1)
    ts = "2026-11-24T14:31:06.%06dZ" % xid
    out.append(json.dumps({"op": "begin", "xid": xid, "lsn": f(lsn), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    for i, op in enumerate(ops):
        ev = {"op": op, "schema": "public", "table": "workitems", "id": f"{f(commit)}:{i}",
              "lsn": f(lsn + 0x100 * (i + 1)), "xid": xid, "ts": ts, "key": {"id": row % 7}}
        if op != "delete":
            ev["new"] = {"id": row % 7, "title": 'say "hi" \\ caf\u00e9 \u2713\ttab', "meta": {"n": row}}
        else:
            ev["old"] = {"id": row % 7}
        out.append(json.dumps(ev, separators=(",", ":"), ensure_ascii=False))
        row += 1
    out.append(json.dumps({"op": "commit", "xid": xid, "lsn": f(commit + 0x30), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    lsn = commit + 0x200
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(out) + "\n")
EOF
rabbit_queue_create events_a
pub a "$T/a.jsonl" --routing-key events_a
is "$RC" 0 "(a) 20 events from a file: exit 0"
rabbit_queue_get events_a >"$T/a.q"
is "$(check exact "$T/a.q" "$T/a.jsonl" events_a 2>&1)" ok \
	"(a) the queue holds the 20 events in order: payload = the line, message_id = its id, delivery_mode 2"
is "$(cat "$T/a.acks")" "$(commits "$T/a.jsonl")" "(a) the four commit LSNs acknowledged, in order"
like "$(tail -1 "$T/a.err")" 'msg=exiting delivered=20 ' "(a) logs 20 delivered"

# ------------------------------------------------------------ (b) nothing bound to the routing key
head -5 "$T/a.jsonl" >"$T/b.jsonl"	# begin, 4 of its inserts, ...
sed -n 8p "$T/a.jsonl" >>"$T/b.jsonl"	# ... its commit
pub b "$T/b.jsonl" --routing-key nobody_home
is "$RC" 9 "(b) routing key without a queue ({\"routed\":false}): exit 9"
like "$(errline "$T/b.err")" 'not routed.*routing key \\"nobody_home\\"' "(b) the error line says not routed, with the routing key"
is "$(wc -c <"$T/b.acks")" 0 "(b) the commit is not acknowledged"
pub b2 "$T/b.jsonl" --routing-key nobody_home --dead-letter "$T/b.dead"
is "$RC" 0 "(b) with --dead-letter: exit 0"
is "$(check deadletter "$T/b.dead" "$T/b.jsonl" 2>&1)" ok "(b) the refused events are in the dead-letter file, as they came"
is "$(cat "$T/b2.acks")" "$(commits "$T/b.jsonl")" "(b) dead-lettered: the commit is acknowledged"

# ------------------------------------------------------------ (c) a full queue that rejects publishes
rabbit_queue_create full_c '{"x-max-length":1,"x-overflow":"reject-publish"}'
blocker='{"properties":{"delivery_mode":2},"routing_key":"full_c","payload":"blocker","payload_encoding":"string"}'
rabbit_api POST /exchanges/%2F/amq.default/publish "$blocker" >/dev/null
head -2 "$T/a.jsonl" >"$T/c.jsonl"
sed -n 8p "$T/a.jsonl" >>"$T/c.jsonl"
retried() { [ "$(grep -c 'delivery failed, will retry' "$T/c.err" 2>/dev/null)" -ge 2 ]; }
( wait_for 20 retried && rabbit_queue_purge full_c ) &
purger=$!
pub c "$T/c.jsonl" --routing-key full_c
wait_exit "$purger" 40
is "$RC" 0 "(c) queue full (reject-publish): delivered once a consumer made room, exit 0"
like "$(grep -m1 'will retry' "$T/c.err")" 'level=warn .*id=0/[0-9A-F]+:0 .*broker rejected the message' "(c) the retries are logged"
rabbit_queue_get full_c >"$T/c.q"
is "$(check exact "$T/c.q" "$T/c.jsonl" full_c 2>&1)" ok "(c) the queue then holds the event"
is "$(cat "$T/c.acks")" "$(commits "$T/c.jsonl")" "(c) and its commit is acknowledged"
rabbit_api POST /exchanges/%2F/amq.default/publish "$blocker" >/dev/null
start=$(date +%s%N)
pub c2 "$T/c.jsonl" --routing-key full_c --retry-max-time 2
took=$((($(date +%s%N) - start) / 1000000))
is "$RC" 4 "(c) still full past --retry-max-time 2: exit 4"
# (it gives up as soon as the next retry would come after the deadline)
# (backoff with jitter: the last attempt can come well before the 2 s)
is "$([ "$took" -ge 500 ] && [ "$took" -le 4000 ] && echo yes || echo "no: $took ms")" yes "(c) after 0.5 to 4 s"
like "$(errline "$T/c2.err")" 'giving up: delivery kept failing past --retry-max-time' "(c) one line saying why"
is "$(wc -c <"$T/c2.acks")" 0 "(c) not acknowledged"
rabbit_queue_delete full_c

# ------------------------------------------------------------ (d) wrong credentials
RMQ=guest:wrong-secret-pw pub d "$T/c.jsonl" --routing-key events_a
is "$RC" 9 "(d) wrong password: exit 9"
like "$(errline "$T/d.err")" 'status=401' "(d) an error line with the 401"
is "$(grep -c 'wrong-secret-pw' "$T/d.err")" 0 "(d) the password is not in stderr"
is "$(wc -c <"$T/d.acks")" 0 "(d) not acknowledged"
is "$(rabbit_queue_get events_a)" "[]" "(d) nothing published"

# ------------------------------------------------------------ (e) end to end with PostgreSQL
pg_start "$T/pg" "$(free_port)" || exit 1
CONN=$(pg_conninfo)
confirmed() { sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$1'"; }
slot_inactive() { [ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = '$1'")" = f ]; }
# slot_at SLOT LSN: prints LSN when the slot is there, or past it over WAL
# without a change to deliver (pg-capture confirms an idle stream's server
# position once nothing is unacknowledged); otherwise where it is
slot_at() {
	local c
	wait_for 10 slot_inactive "$1"
	c=$(confirmed "$1")
	if [ "$(sql "SELECT '$c'::pg_lsn > '$2'::pg_lsn")" = t ] &&
		[ "$(sql "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('$1', NULL, NULL,
			'proto_version', '1', 'publication_names', '$1')")" = 0 ]; then
		c=$2
	fi
	echo "$c"
}
# a slot, created before the workload and drained; "ref" is a second slot
# reading the same changes, for the committed set
new_slot() {
	"$PG_CAPTURE" -d "$CONN" -S "$1" --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
	wait_for 10 slot_inactive "$1"
}
ref_stream() {
	"$PG_CAPTURE" -d "$CONN" -S "$1" --endpos "$2" >"$3" 2>"$3.err"
}
# pipeline NAME SLOT ENDPOS|- [cdc-publish OPTION...]: pg-capture | cdc-publish in the
# background, sharing the ack FIFO $T/ack; pids in CAP and PUB. The pipe between
# them is a named one only so that the shell can wait for both: to each program it
# is the same pipe (EPIPE for pg-capture once cdc-publish is gone).
pipeline() {
	local name=$1 slot=$2 endpos=()
	[ "$3" != - ] && endpos=(--endpos "$3")
	shift 3
	rm -f "$T/$name.pipe"
	mkfifo -m 600 "$T/$name.pipe"
	"$PG_CAPTURE" -d "$CONN" -S "$slot" --ack-fifo "$T/ack" "${endpos[@]}" --status-interval 0.5 \
		>"$T/$name.pipe" 2>"$T/$name.cap.err" &
	CAP=$!
	"$PUBLISH" --ack-fifo "$T/ack" --target rabbitmq --basic-env RMQ "$@" "$RABBIT_URL" \
		<"$T/$name.pipe" 2>"$T/$name.pub.err" &
	PUB=$!
}
rm -f "$T/ack"
mkfifo -m 600 "$T/ack"

sql "CREATE TABLE kv (k int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)"
sql "CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL)"
new_slot e1 && new_slot e1ref && new_slot e2 && new_slot e2ref
# a mixed workload over a few keys: several transactions, one rolled back
sql "INSERT INTO kv SELECT i, 'v' || i FROM generate_series(1, 8) i"
sql "BEGIN; UPDATE kv SET n = n + 1 WHERE k <= 4; DELETE FROM kv WHERE k = 8; INSERT INTO kv VALUES (9, 'nine'); COMMIT"
sql "BEGIN; UPDATE kv SET n = n + 1 WHERE k = 1; UPDATE kv SET n = n + 1 WHERE k = 1; UPDATE kv SET v = 'two''s \"quoted\"' WHERE k = 2; COMMIT"
sql "BEGIN; INSERT INTO kv VALUES (100, 'rolled back'); UPDATE kv SET n = -1; ROLLBACK"
sql "DELETE FROM kv WHERE k IN (3, 9)"
sql "INSERT INTO kv VALUES (8, 'again', 5), (3, 'back', 1)"
for i in 1 2 3 4 5; do sql "UPDATE kv SET n = n + $i WHERE k % 2 = $((i % 2))"; done
sql "BEGIN; DELETE FROM kv WHERE k = 5; INSERT INTO kv VALUES (5, 'five again'); UPDATE kv SET n = 0 WHERE k = 5; COMMIT"
# (e1 is read up to here only: the 20000 rows below are for e2)
end1=$(sql "SELECT pg_current_wal_lsn()")
rabbit_queue_create e1
pipeline e1 e1 "$end1" --routing-key e1
wait_exit "$PUB" 60
pub_rc=$RC
wait_exit "$CAP" 10
is "$pub_rc $RC" "0 0" "(e) pg-capture --endpos | cdc-publish: both exit 0"
ref_stream e1ref "$end1" "$T/e1.ref"
rabbit_queue_get e1 >"$T/e1.q"
n_ref=$(python3 "$HERE/events.py" "$T/e1.ref" ids)
is "$(check once "$T/e1.q" "$T/e1.ref" e1 2>&1)" "rows $n_ref of $n_ref
distinct $n_ref
missing 0
unknown 0
payload mismatches 0
bad properties 0
keys out of order 0
in commit order yes" "(e) every committed change arrives exactly once, as captured, in order ($n_ref changes)"
is "$(grep -c '"rolled back"' "$T/e1.q")" 0 "(e) nothing of the rolled-back transaction"
last=$(commits "$T/e1.ref" | tail -1)
acked=$(sed -n 's/.*msg=exiting .* acknowledged=\([0-9A-F/]*\).*/\1/p' "$T/e1.pub.err")
is "$acked" "$last" "(e) cdc-publish acknowledged the last commit"
is "$(slot_at e1 "$last")" "$last" "(e) the slot's confirmed_flush_lsn is the last acknowledged commit"

# --- kill -9 cdc-publish in the middle of 20000 rows, then restart the pipeline
for b in 0 1 2 3 4 5 6 7 8 9; do
	sql "INSERT INTO big SELECT i, 0 FROM generate_series($((b * 1000 + 1)), $((b * 1000 + 1000))) i"
done
for b in 0 1 2 3 4 5 6 7 8 9; do
	sql "UPDATE big SET v = v + 1 WHERE id > $((b * 1000)) AND id <= $((b * 1000 + 1000))"
done
end2=$(sql "SELECT pg_current_wal_lsn()")
rabbit_queue_create e2
start2=$(confirmed e2)
some_arrived() { [ "$(rabbit_queue_depth e2)" -ge 3000 ]; }
# (--window 1000: pg-capture is still writing when cdc-publish dies)
pipeline e2a e2 "$end2" --routing-key e2 --parallel 4 --window 1000
if wait_for 40 some_arrived; then pass "(e) kill test: 3000 of 20000 changes arrived"; else fail "(e) kill test: 3000 changes did not arrive"; fi
kill -9 "$PUB"
{ wait_exit "$PUB" 5; } 2>/dev/null	# no "Killed" line from the shell
wait_exit "$CAP" 10
is "$RC" 1 "(e) after kill -9 of cdc-publish, pg-capture stops (status 1: downstream gone)"
wait_for 10 slot_inactive e2
c_kill=$(confirmed e2)
rabbit_queue_get e2 >"$T/e2.run1.q"
pipeline e2b e2 "$end2" --routing-key e2 --parallel 4
wait_exit "$PUB" 60
pub_rc=$RC
wait_exit "$CAP" 10
is "$pub_rc $RC" "0 0" "(e) the restarted pipeline runs to --endpos: both exit 0"
rabbit_queue_get e2 >"$T/e2.run2.q"
ref_stream e2ref "$end2" "$T/e2.ref"
is "$(python3 "$HERE/events.py" "$T/e2.ref" counts)" "delete public.kv 4
insert public.big 10000
insert public.kv 12
schema public.big 1
schema public.kv 1
update public.big 10000
update public.kv 28" "(e) the reference stream: the 20000 changes (and the mixed workload before them)"
is "$(check restart "$T/e2.run1.q" "$T/e2.run2.q" "$T/e2.ref" "$c_kill" e2 2>"$T/e2.facts")" \
"run 1 delivered some but not all: yes
run 1 repeats 0
slot moved past an acknowledged commit: yes
acknowledged but not in the queue 0
run 2 repeats an acknowledged change 0
run 2 is the unacknowledged tail yes
missing 0
unknown 0
deduplicated is the committed set yes
payload mismatches 0
bad properties 0
keys out of order 0" "(e) kill -9 and restart: at least once, exactly the committed set after dropping repeated message ids"
echo "$(cat "$T/e2.facts") (slot before $start2, at the kill $c_kill)"
last2=$(commits "$T/e2.ref" | tail -1)
is "$(slot_at e2 "$last2")" "$last2" "(e) after the restart the slot is at the last commit"

# --- cdc-publish dies while pg-capture has written everything and waits for
# acknowledgements (the queue is full, cdc-publish retries): pg-capture must
# notice and leave, or it holds the slot until the next change comes (and
# with --endpos, forever)
rabbit_queue_create full_f '{"x-max-length":1,"x-overflow":"reject-publish"}'
rabbit_api POST /exchanges/%2F/amq.default/publish "${blocker//full_c/full_f}" >/dev/null
sql "INSERT INTO kv VALUES (42, 'stuck')"
for mode in streaming endpos; do
	if [ $mode = endpos ]; then pipeline f_$mode e2 "$(sql "SELECT pg_current_wal_lsn()")" --routing-key full_f
	else pipeline f_$mode e2 - --routing-key full_f; fi
	retrying() { grep -q 'delivery failed, will retry' "$T/f_$mode.pub.err"; }
	wait_for 20 retrying
	sleep 0.3	# pg-capture has written all there is and waits
	kill -9 "$PUB"
	{ wait_exit "$PUB" 5; } 2>/dev/null
	wait_exit "$CAP" 5
	is "$RC" 1 "(e) $mode: cdc-publish killed while pg-capture waits for acknowledgements: pg-capture exits 1"
	like "$(grep -m1 level=error "$T/f_$mode.cap.err")" 'downstream closed|acknowledg' "(e) $mode: saying the next stage is gone"
	wait_for 10 slot_inactive e2
done
"$PG_CAPTURE" -d "$CONN" -S e2 --endpos "$(sql "SELECT pg_current_wal_lsn()")" >"$T/f.again" 2>/dev/null
like "$(grep '"op":"insert"' "$T/f.again")" '"new":\{"k":42,"v":"stuck"' "(e) the unacknowledged transaction is delivered again by the next run"

# --- (g) a routine broker restart under load: while the broker stops and
# starts, its API refuses for a moment (404 on the exchange, connection
# refused); nothing may go to the dead-letter file, cdc-publish goes on, and
# the queue ends up with every event
rabbit_queue_create events_g
python3 - "$T/g.jsonl" <<'EOF'
import json, sys
out, lsn = [], 0x5000000
def f(v): return "%X/%X" % (v >> 32, v & 0xffffffff)
for xid in range(2000, 2400):	# 400 transactions of 5 events
    commit = lsn + 0x100 * 6
    ts = "2026-11-24T14:31:06.000000Z"
    out.append(json.dumps({"op": "begin", "xid": xid, "lsn": f(lsn), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    for i in range(5):
        out.append(json.dumps({"op": "insert", "schema": "public", "table": "workitems", "id": f"{f(commit)}:{i}",
                               "lsn": f(lsn + 0x100 * (i + 1)), "xid": xid, "ts": ts, "key": {"id": xid * 10 + i},
                               "new": {"id": xid * 10 + i}}, separators=(",", ":")))
    out.append(json.dumps({"op": "commit", "xid": xid, "lsn": f(commit + 0x10), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    lsn = commit + 0x100
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
mkfifo -m 600 "$T/g.in" "$T/g.fifo"
cat "$T/g.fifo" >"$T/g.acks" &
gcat=$!
# the events come over 20 s: the restart falls in the middle of them
timeout 60 python3 -c '
import sys, time
lines = open(sys.argv[1]).read().splitlines(True)
with open(sys.argv[2], "w") as out:
    for i in range(0, len(lines), 30):
        out.write("".join(lines[i:i + 30])); out.flush(); time.sleep(0.2)' "$T/g.jsonl" "$T/g.in" &
timeout -k 5 120 "$PUBLISH" --target rabbitmq --basic-env RMQ --ack-fifo "$T/g.fifo" --routing-key events_g \
	--dead-letter "$T/g.dead" --parallel 4 "$RABBIT_URL" <"$T/g.in" >"$T/g.out" 2>"$T/g.err" &
gpub=$!
acked() { [ -s "$T/g.acks" ]; }
wait_for 30 acked
rabbit_ctl --timeout 60 stop_app >"$T/g.ctl" 2>&1 || echo "stop_app failed: $?" >>"$T/g.ctl"
rabbit_ctl --timeout 60 start_app >>"$T/g.ctl" 2>&1 || echo "start_app failed: $?" >>"$T/g.ctl"
wait_exit "$gpub" 100
is "$RC" 0 "(g) a broker restart under load: cdc-publish exits 0"
is "$(cat "$T/g.dead" 2>/dev/null | wc -l | tr -d ' ')" 0 "(g) nothing went to the dead-letter file"
wait_exit "$gcat" 3
is "$(tail -1 "$T/g.acks")" "$(commits "$T/g.jsonl" | tail -1)" "(g) the last commit is acknowledged"
rabbit_queue_get events_g >"$T/g.q"
is "$(python3 -c '
import json, sys
got = {m["properties"]["message_id"] for m in json.load(open(sys.argv[1]))}
want = {json.loads(l)["id"] for l in open(sys.argv[2]) if "\"op\":\"insert\"" in l}
print("missing", len(want - got), "extra", len(got - want))' "$T/g.q" "$T/g.jsonl")" "missing 0 extra 0" \
	"(g) the queue holds every event (at least once)"
if grep -q 'will retry' "$T/g.err"; then pass "(g) the restart was seen: retries were logged"
else fail "(g) the restart was seen: retries were logged" "no retry in the log; rabbitmqctl said: $(tr "\n" " " <"$T/g.ctl")"; fi

# --- the broker stops and leaves nothing behind
dir=$RABBIT_DIR
port=${RABBIT_URL##*:}
rabbit_stop
is "$(_rabbit_pids_of "$dir" | wc -l)" 0 "rabbit_stop: no process of the node is left (epmd included)"
if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "rabbit_stop: the management port is closed"
else pass "rabbit_stop: the management port is closed"; fi
done_testing
