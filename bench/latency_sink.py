#!/usr/bin/python3
"""A small HTTP sink that timestamps what arrives, for bench/publish.sh.

    latency_sink.py serve PORT OUT     answer every POST with 204 (HTTP/1.1
                                       keep-alive) and append, for each event in
                                       the body, "ARRIVAL_US COMMIT_US TABLE" to OUT
                                       (flushed when stopped by SIGTERM or SIGINT)
    latency_sink.py stats OUT TABLE    p50, p99, p99.9 and max of ARRIVAL - COMMIT
                                       over the events of TABLE, in ms

The arrival time is taken once the body has been read, before it is parsed.
The body may be one event, a JSON array of events (cdc-publish --batch) or
NDJSON. The commit time is the event's "ts" (cdc-json: the commit timestamp)
or "timestamp" (wal2json format 2, include-timestamp), both from the same
clock as time.time() on this machine.
"""
import datetime
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

records = []	# (arrival_us, body) until stopped: parsing waits for the end
lock = threading.Lock()


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.time_ns() // 1000
        self.send_response(204)
        self.end_headers()
        with lock:
            records.append((now, body))

    def log_message(self, *args):
        pass


def commit_us(text):
    # cdc-json: 2026-11-24T14:31:06.798528Z; wal2json: 2026-11-24 14:31:06.798528+00
    if text.endswith("+00"):
        text += ":00"
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1000000 + t.microsecond


def events(body):
    text = body.decode()
    try:
        doc = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return doc if isinstance(doc, list) else [doc]


def serve(port, out):
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    server.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.1)
    with lock:
        got = list(records)
    with open(out, "w") as f:
        for arrival, body in got:
            for e in events(body):
                ts = e.get("ts") or e.get("timestamp")
                if ts:
                    f.write("%d %d %s\n" % (arrival, commit_us(ts), e.get("table", "-")))


def stats(out, table):
    lat = []
    first = last = None
    with open(out) as f:
        for line in f:
            arrival, commit, tab = line.split()
            if tab != table:
                continue
            commit = int(commit)
            lat.append((int(arrival) - commit) / 1000.0)
            first = commit if first is None or commit < first else first
            last = commit if last is None or commit > last else last
    if not lat:
        print("0 - - - - -")
        return
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    rate = (len(lat) - 1) / ((last - first) / 1e6) if last > first else 0
    # events, commits/s, p50, p99, p99.9, max (ms)
    print("%d %.0f %.2f %.2f %.2f %.2f" % (len(lat), rate, pct(0.5), pct(0.99), pct(0.999), lat[-1]))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "stats":
        stats(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
