#!/usr/bin/env python3
"""Take every message from an Azure Storage queue (Azurite), every
INTERVAL seconds until SIGTERM, then until the queue is empty. Writes one
JSON line per message, as rabbit_drain.py does: the payload (the message
text base64-decoded: the event's JSON text), its MessageId and the window
it arrived in: after "after" and before "before".

    azq_drain.py ENDPOINT QUEUE FILE [INTERVAL]    (ENDPOINT: http://127.0.0.1:PORT/devstoreaccount1)

Requests are signed by tests/lib/azq.py (account and key from AZQ_ACCOUNT
and AZQ_KEY, by default Azurite's public development account).

A poll is Get Messages (32 at most, each made invisible for VISIBILITY
seconds) again and again until one answers fewer than 32: then the queue
had no other visible message. A line is written once its message is read;
then the message is deleted with its pop receipt, so it does not come back
(a delete that fails, the service being down, is tried again before the
next Get; one the service no longer knows, 404, or whose receipt is not
the latest, 400, is done). "before" is the end of the Get that took the
message; "after" the start of the last poll that went through to its end
before the one that took it (that poll left the queue without it).

A Get that got no answer (the service stopped while it ran) may still have
taken messages: they come back VISIBILITY seconds later, their
DequeueCount above 1, and are written with the window of the Gets that
may have taken them (those that got no answer, short of a refused
connection, and whose messages may not all have come back yet): "after"
the earliest of their "after", "before" the latest of their ends. So such
a message keeps its place among the others: in the queue it came before
whatever a later Get took. A message read again (its delete failed for
VISIBILITY seconds) is written again with the window it was first read
in. At the end the queue is drained when it counts no message, invisible
ones included.
"""

import base64
import binascii
import json
import os
import signal
import sys
import time
import http.client
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import azq  # noqa: E402

BATCH = 32          # the most one Get Messages takes
VISIBILITY = 15     # seconds a message taken stays invisible
stop = False


def on_term(*_):
    global stop
    stop = True


def main():
    endpoint, queue, path = sys.argv[1:4]
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.25
    account = os.environ.get("AZQ_ACCOUNT", azq.ACCOUNT)
    key = os.environ.get("AZQ_KEY", azq.KEY)
    signal.signal(signal.SIGTERM, on_term)

    def call(verb, path_, query=None):
        """(status, body, headers); status 0 when the connection was refused
        (the service never saw the request), None when there was no answer."""
        try:
            return azq.request(endpoint, account, key, verb, path_, query)
        except (OSError, ValueError, http.client.HTTPException) as e:
            refused = isinstance(e, ConnectionRefusedError) or \
                isinstance(getattr(e, "reason", None), ConnectionRefusedError)
            return 0 if refused else None, b"", {}

    def delete(m):
        """True once the message is gone."""
        status, _, _ = call("DELETE", "/%s/messages/%s" % (queue, m[0]), {"popreceipt": m[1]})
        return status in (204, 404, 400)

    def queue_count():
        status, _, headers = call("GET", "/" + queue, {"comp": "metadata"})
        return int(headers["x-ms-approximate-messages-count"]) if status == 200 else None

    started = time.time()
    pending = []        # (MessageId, PopReceipt) read, not yet deleted
    unanswered = []     # (end, after) of each Get that got no answer, while its messages may be invisible
    window = {}         # MessageId -> (after, before) it was first read in
    last_ok = started
    with open(path, "a") as out, ThreadPoolExecutor(8) as pool:
        while True:
            if pending:
                done = list(pool.map(delete, pending))
                pending = [m for m, ok in zip(pending, done) if not ok]
            start = time.time()
            complete, taken = False, 0
            while True:
                status, data, _ = call("GET", "/%s/messages" % queue,
                                       {"numofmessages": BATCH, "visibilitytimeout": VISIBILITY})
                end = time.time()
                try:
                    msgs = list(ET.fromstring(data).iter("QueueMessage")) if status == 200 else None
                except ET.ParseError:
                    msgs = None
                if msgs is None:
                    if status != 0:
                        unanswered.append((end, last_ok))
                    break
                for m in msgs:
                    text = m.findtext("MessageText")
                    try:
                        payload = base64.b64decode(text or "", validate=True).decode("utf-8")
                    except (binascii.Error, ValueError):
                        payload = text
                    mid = m.findtext("MessageId")
                    if mid in window:
                        after, before = window[mid]
                    elif int(m.findtext("DequeueCount") or 1) > 1:
                        # none left would be a Get missed: the widest window then
                        after = min([a for _, a in unanswered], default=started)
                        before = max([e for e, _ in unanswered], default=end)
                    else:
                        after, before = last_ok, end
                    window[mid] = (after, before)
                    out.write(json.dumps({"after": after, "before": before, "payload": payload,
                                          "message_id": mid}) + "\n")
                    pending.append((mid, m.findtext("PopReceipt")))
                out.flush()
                taken += len(msgs)
                if len(msgs) < BATCH:
                    complete = True
                    break
            if complete:
                last_ok = start
                # what a Get without an answer took was visible again before this
                # poll (5 s to spare: the service may have ended it after it
                # dropped the connection): this poll took it
                unanswered = [(e, a) for e, a in unanswered if e + VISIBILITY + 5 > start]
                if stop and not taken and not pending and queue_count() == 0:
                    return
            if not stop or not complete or not taken:
                time.sleep(interval)


if __name__ == "__main__":
    main()
