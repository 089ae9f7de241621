#!/usr/bin/env python3
"""Take every message from a RabbitMQ queue, through the management API,
every INTERVAL seconds until SIGTERM, then until the queue answers none.
Writes one JSON line per message: the payload, its message_id and the
window it arrived in: after "after" (the start of the last poll that
answered before the one that took it, which left the queue without it)
and before "before" (the end of the poll that took it).

    rabbit_drain.py API_URL QUEUE FILE [INTERVAL]     (API_URL: http://127.0.0.1:PORT/api)

Credentials: guest:guest (the throwaway node's; loopback only).
"""

import base64
import json
import signal
import sys
import time
import urllib.error
import urllib.request

stop = False


def on_term(*_):
    global stop
    stop = True


def get(api, queue):
    req = urllib.request.Request(
        "%s/queues/%%2F/%s/get" % (api, queue),
        data=json.dumps({"count": 2000, "ackmode": "ack_requeue_false", "encoding": "auto"}).encode(),
        headers={"content-type": "application/json",
                 "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def main():
    api, queue, path = sys.argv[1:4]
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.25
    signal.signal(signal.SIGTERM, on_term)
    last_ok = time.time()
    with open(path, "a") as out:
        while True:
            start = time.time()
            try:
                msgs = get(api, queue)
            except (OSError, ValueError, urllib.error.URLError):
                msgs = None             # the broker is down: try again
            end = time.time()
            if msgs is not None:
                for m in msgs:
                    out.write(json.dumps({"after": last_ok, "before": end, "payload": m.get("payload"),
                                          "message_id": m.get("properties", {}).get("message_id")}) + "\n")
                out.flush()
                last_ok = start
                if stop and not msgs:
                    return
            if not stop or msgs is None:
                time.sleep(interval)


if __name__ == "__main__":
    main()
