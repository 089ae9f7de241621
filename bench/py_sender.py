#!/usr/bin/env python3
"""The original design's sender, for bench/targets.sh: read event lines
and send each one with requests.post, one request at a time, waiting for
each answer, as the Python listener did (no session: a new connection per
event, like a listener calling requests.post in its callback).

    py_sender.py storage-queue ENDPOINT QUEUE < events    (Azurite: SharedKey)
    py_sender.py sqs ENDPOINT QUEUE_URL < events          (fauxqs: JSON protocol)

Transaction markers (begin, commit) are skipped. Prints the number of
events sent; exits 1 at the first answer that is not a success.
"""
import base64
import datetime
import hashlib
import hmac
import json
import sys

import requests

ACCOUNT = "devstoreaccount1"
KEY = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


def storage_queue(endpoint, queue, line):
    body = ("<QueueMessage><MessageText>%s</MessageText></QueueMessage>"
            % base64.b64encode(line.encode()).decode()).encode()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    path = "/%s/%s/messages" % (ACCOUNT, queue)
    sts = "POST\n\n\n%d\n\napplication/xml\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:2021-12-02\n/%s%s" % (
        len(body), date, ACCOUNT, path)
    sig = base64.b64encode(hmac.new(KEY, sts.encode(), hashlib.sha256).digest()).decode()
    r = requests.post("%s/%s/messages" % (endpoint, queue), data=body, headers={
        "x-ms-date": date, "x-ms-version": "2021-12-02", "Content-Type": "application/xml",
        "Authorization": "SharedKey %s:%s" % (ACCOUNT, sig)})
    return r.status_code == 201


def sqs(endpoint, queue_url, line):
    r = requests.post(endpoint, data=json.dumps({"QueueUrl": queue_url, "MessageBody": line}), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage"})
    return r.status_code == 200


def main():
    kind, endpoint, queue = sys.argv[1:4]
    send = {"storage-queue": storage_queue, "sqs": sqs}[kind]
    n = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.startswith('{"op":"begin"') or line.startswith('{"op":"commit"'):
            continue
        if not send(endpoint, queue, line):
            print("py_sender: event %d refused" % (n + 1), file=sys.stderr)
            sys.exit(1)
        n += 1
    print(n)


if __name__ == "__main__":
    main()
