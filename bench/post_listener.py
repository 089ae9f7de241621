#!/usr/bin/python3
"""The original design's shape, delivering: a psycopg2 logical replication
listener (wal2json, format 2) that POSTs each row change to URL as it arrives,
over one keep-alive connection (http.client), and acknowledges the change to
the server once the POST got a 2xx answer.

    post_listener.py CONNINFO SLOT URL [END_LSN]

With END_LSN it stops at the first message at or after that position (as
bench/listener.py does); without it, it runs until SIGTERM or SIGINT. Either
way it prints how many changes it posted. A non-2xx answer or a lost
connection stops it with status 1: the original design had no retries.
"""
import http.client
import json
import signal
import sys
import urllib.parse

import psycopg2
import psycopg2.extras


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def main():
    conninfo, slot, url = sys.argv[1], sys.argv[2], urllib.parse.urlsplit(sys.argv[3])
    end = lsn(sys.argv[4]) if len(sys.argv) > 4 else None
    sink = http.client.HTTPConnection(url.hostname, url.port or 80)
    path = url.path or "/"
    headers = {"Content-Type": "application/json"}
    conn = psycopg2.connect(conninfo, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    cur = conn.cursor()
    # the same plugin options pg-capture asks for, so the server does the same work
    cur.start_replication(slot_name=slot, decode=True, options={
        "format-version": "2",
        "include-xids": "1",
        "include-timestamp": "1",
        "include-lsn": "1",
        "include-pk": "1",
        "include-type-oids": "1",
        "include-transaction": "1",
    })
    posted = 0

    def stop(signum, frame):
        raise psycopg2.extras.StopReplication

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def consume(msg):
        nonlocal posted
        if end is not None and msg.data_start >= end:
            raise psycopg2.extras.StopReplication
        change = json.loads(msg.payload)
        if change["action"] in ("I", "U", "D", "T"):
            sink.request("POST", path, body=msg.payload.encode(), headers=headers)
            resp = sink.getresponse()
            resp.read()
            if resp.status // 100 != 2:
                sys.exit("post_listener: POST answered %d" % resp.status)
            posted += 1
        msg.cursor.send_feedback(flush_lsn=msg.data_start)

    try:
        cur.consume_stream(consume)
    except psycopg2.extras.StopReplication:
        pass
    conn.close()
    print(posted)


if __name__ == "__main__":
    main()
