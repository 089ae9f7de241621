#!/usr/bin/python3
"""The original design's consumer, for comparison: psycopg2's logical
replication support, wal2json format 2, one json.loads per message and a
feedback call per message. Stops at the first message at or after END.

usage: listener.py CONNINFO SLOT END_LSN

Prints the number of row changes (wal2json actions I, U, D) it saw.
Needs Debian's /usr/bin/python3 with python3-psycopg2.
"""
import json
import sys

import psycopg2
import psycopg2.extras


def lsn(s):
    hi, lo = s.split("/")
    return int(hi, 16) << 32 | int(lo, 16)


def main():
    conninfo, slot, end = sys.argv[1], sys.argv[2], lsn(sys.argv[3])
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
    rows = 0

    def consume(msg):
        nonlocal rows
        if msg.data_start >= end:
            raise psycopg2.extras.StopReplication
        change = json.loads(msg.payload)
        if change["action"] in ("I", "U", "D"):
            rows += 1
        msg.cursor.send_feedback(flush_lsn=msg.data_start)

    try:
        cur.consume_stream(consume)
    except psycopg2.extras.StopReplication:
        pass
    conn.close()
    print(rows)


if __name__ == "__main__":
    main()
