#!/usr/bin/env python3
"""Record the slot's confirmed_flush_lsn every INTERVAL seconds until
SIGTERM: one line "TIME LSN" per sample, TIME (seconds since the epoch)
taken once the answer is in, so the slot had that position by then.
Samples the server cannot give (it is restarting) are skipped.

    sample.py CONNINFO SLOT FILE [INTERVAL]
"""

import signal
import sys
import time

import psycopg2

stop = False


def on_term(*_):
    global stop
    stop = True


def main():
    conninfo, slot, path = sys.argv[1:4]
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
    signal.signal(signal.SIGTERM, on_term)
    conn = None
    with open(path, "a") as out:
        while not stop:
            try:
                if conn is None:
                    conn = psycopg2.connect(conninfo, connect_timeout=2)
                    conn.autocommit = True
                cur = conn.cursor()
                cur.execute("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                t = time.time()
                if row and row[0]:
                    out.write("%.6f %s\n" % (t, row[0]))
                    out.flush()
            except psycopg2.Error:
                try:
                    conn and conn.close()
                except psycopg2.Error:
                    pass
                conn = None
            time.sleep(interval)


if __name__ == "__main__":
    main()
