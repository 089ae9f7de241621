#!/usr/bin/env python3
"""Helpers of tests/integration/sqs.sh: read an SQS queue (fauxqs) back,
compare what arrived with the events sent, and check the SigV4 signatures
of logged requests with an implementation of our own (hmac, hashlib).

usage:
  sqs.py receive ENDPOINT QUEUE_URL OUT    every message, deleted as read; bodies one a line
  sqs.py depth ENDPOINT QUEUE_URL          ApproximateNumberOfMessages
  sqs.py exact GOT EVENTS [sorted]         the bodies are the event lines (begin and commit
                                           left out), in input order per row ("sorted": as a set)
  sqs.py once GOT REF                      facts: every row change of REF exactly once, per-row order
  sqs.py sigv4 LOG SECRET                  every request of an httpstub log signed right
"""
import hashlib
import hmac
import http.client
import json
import sys
import urllib.parse

ROWS = ("insert", "update", "delete", "truncate", "message")


def call(conn, target, body):
    conn.request("POST", "/", json.dumps(body), {
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS." + target})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{target}: HTTP {r.status} {data[:300]!r}")
    return json.loads(data or b"{}")


def connect(endpoint):
    u = urllib.parse.urlsplit(endpoint)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def receive(endpoint, queue, out):
    conn = connect(endpoint)
    bodies = []
    while True:
        got = call(conn, "ReceiveMessage", {"QueueUrl": queue, "MaxNumberOfMessages": 10,
                                             "VisibilityTimeout": 120, "WaitTimeSeconds": 0})
        msgs = got.get("Messages") or []
        if not msgs:
            break
        bodies += [m["Body"] for m in msgs]
        # a FIFO group gives its next message only once the last one is deleted
        call(conn, "DeleteMessageBatch", {"QueueUrl": queue, "Entries": [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]})
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(b + "\n" for b in bodies))


def depth(endpoint, queue):
    got = call(connect(endpoint), "GetQueueAttributes",
               {"QueueUrl": queue, "AttributeNames": ["ApproximateNumberOfMessages"]})
    print(got["Attributes"]["ApproximateNumberOfMessages"])


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def rowkey(ev):
    return (ev.get("schema"), ev.get("table"), json.dumps(ev.get("key"), sort_keys=True))


def canon(line):
    return json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def events_of(bodies):
    """The events of --pack bodies (JSON arrays of events), each as canon() text."""
    return [json.dumps(e, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
            for b in bodies for e in json.loads(b)]


def per_row(evlines):
    seq = {}
    for l in evlines:
        ev = json.loads(l)
        seq.setdefault(rowkey(ev), []).append(ev.get("id", ev.get("lsn")))
    return seq


def exact(got_path, events_path, mode):
    """sorted: the same lines in any order; fifo: and per row in input order;
    packed: the arrays' events are the events, per row in input order."""
    got = lines(got_path)
    want = [l for l in lines(events_path) if json.loads(l)["op"] not in ("begin", "commit")]
    if mode == "packed":
        got, want = events_of(got), [canon(l) for l in want]
    if sorted(got) != sorted(want):
        sys.exit(f"{len(got)} messages, want {len(want)}; missing {sorted(set(want) - set(got))[:2]}, "
                 f"unexpected {sorted(set(got) - set(want))[:2]}")
    if mode != "sorted" and per_row(got) != per_row(want):
        sys.exit("a row's events arrived out of order")
    print("ok")


def once(got_path, ref_path):
    byid, order = {}, []
    for l in lines(ref_path):
        ev = json.loads(l)
        if ev["op"] in ROWS:
            byid[ev["id"]] = l
            order.append(ev["id"])
    got = [b for b in lines(got_path) if json.loads(b)["op"] in ROWS]
    ids = [json.loads(b).get("id") for b in got]
    want_seq = per_row([byid[i] for i in order])
    got_seq = per_row([b for b, i in zip(got, ids) if i in byid])
    facts = [
        f"messages {len(got)} of {len(order)}",
        f"distinct {len(set(ids))}",
        f"missing {len(set(order) - set(ids))}",
        f"unknown {len(set(ids) - set(order))}",
        f"body mismatches {sum(1 for i, b in zip(ids, got) if byid.get(i) != b)}",
        f"rows out of order {sum(1 for k, v in want_seq.items() if got_seq.get(k) != v)}",
    ]
    print("\n".join(facts))


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4(log_path, secret):
    bad = 0
    n = 0
    for l in lines(log_path):
        rq = json.loads(l)
        n += 1
        hdrs = {}
        for k, v in rq["headers"]:
            hdrs[k.lower()] = " ".join(v.split())
        auth = hdrs.get("authorization", "")
        try:
            cred = auth.split("Credential=")[1].split(",")[0]
            signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
            sig = auth.split("Signature=")[1]
            akid, date, region, service, term = cred.split("/")
        except (IndexError, ValueError):
            print(f"request {n}: Authorization {auth!r}")
            bad += 1
            continue
        path, _, query = rq["path"].partition("?")
        creq = "\n".join([rq["method"], path, query] + [f"{h}:{hdrs.get(h, '')}" for h in signed] +
                         ["", ";".join(signed), hashlib.sha256(rq["body"].encode()).hexdigest()])
        scope = f"{date}/{region}/{service}/{term}"
        sts = "\n".join(["AWS4-HMAC-SHA256", hdrs.get("x-amz-date", ""), scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        key = sign(sign(sign(sign(("AWS4" + secret).encode(), date), region), service), term)
        want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if want != sig or not hdrs.get("x-amz-date", "").startswith(date) or signed != sorted(signed):
            print(f"request {n}: signature {sig}, want {want}")
            bad += 1
    print(f"{n} requests, {bad} badly signed")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "receive":
        receive(*sys.argv[2:5])
    elif cmd == "depth":
        depth(*sys.argv[2:4])
    elif cmd == "exact":
        exact(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "fifo")
    elif cmd == "once":
        once(sys.argv[2], sys.argv[3])
    elif cmd == "sigv4":
        sigv4(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
