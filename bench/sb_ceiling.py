#!/usr/bin/env python3
"""A stand-in for an Azure Service Bus Standard namespace's throughput
ceiling, for bench/targets.sh: it takes sends on loopback and allows
--rate messages a second (one credit per message, a batch of 100 costs
100), like Standard's 1 000 credits/s. Over it, it answers as Service Bus
does when it throttles: 503 with error 50009 in the body and no
Retry-After ("Please wait 2 seconds and try again").

    sb_ceiling.py --port-file F [--rate 1000] [--stats F]

Messages are counted from the request: a batch
(application/vnd.microsoft.servicebus.json) is a JSON array of messages,
anything else one message. Events are counted as the "op" members inside
the message bodies (escaped, since a body is a JSON string). --stats F is
rewritten after every request: "messages events throttled requests
first_t last_t". Only 127.0.0.1 is bound.
"""

import argparse
import http.server
import json
import os
import threading
import time


class Bucket:
    """Credits refilled at rate per second, at most rate banked; none at
    start, so that a run of a few seconds measures the ceiling, not a burst."""

    def __init__(self, rate):
        self.rate = rate
        self.credits = 0.0
        self.t = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            self.credits = min(self.rate, self.credits + (now - self.t) * self.rate)
            self.t = now
            if self.credits < n:
                return False
            self.credits -= n
            return True


class Stats:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.messages = self.events = self.throttled = self.requests = 0
        self.first = self.last = 0.0

    def add(self, messages, events, throttled):
        with self.lock:
            now = time.time()
            self.requests += 1
            if throttled:
                self.throttled += 1
            else:
                self.messages += messages
                self.events += events
                self.first = self.first or now
                self.last = now
            if self.path:
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    f.write("%d %d %d %d %.3f %.3f\n" % (self.messages, self.events, self.throttled,
                                                         self.requests, self.first, self.last))
                os.replace(tmp, self.path)


def handler(bucket, stats):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Type") == "application/vnd.microsoft.servicebus.json":
                messages = len(json.loads(body))
            else:
                messages = 1
            events = body.count(b'\\"op\\":') or body.count(b'"op":')
            if bucket.take(messages):
                stats.add(messages, events, False)
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            stats.add(messages, events, True)
            text = (b"<Error><Code>503</Code><Detail>The request was terminated because the namespace "
                    b"is being throttled. Error code : 50009. Please wait 2 seconds and try again."
                    b"</Detail></Error>")
            self.send_response(503)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--stats")
    ap.add_argument("--max-time", type=float, default=900)
    a = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(Bucket(a.rate), Stats(a.stats)))
    srv.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    threading.Timer(a.max_time, srv.shutdown).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
