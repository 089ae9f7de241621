#!/usr/bin/env python3
"""A slow consumer: wait PAUSE seconds, then copy stdin to FILE at RATE
bytes/s (0: unlimited). Used to block pg-capture's stdout on purpose."""
import sys
import time

pause, rate, path = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
time.sleep(pause)
with open(path, "wb") as out:
    while True:
        chunk = sys.stdin.buffer.read1(65536) if rate == 0 else sys.stdin.buffer.read1(min(65536, rate // 10 or 1))
        if not chunk:
            break
        out.write(chunk)
        out.flush()
        if rate:
            time.sleep(len(chunk) / rate)
