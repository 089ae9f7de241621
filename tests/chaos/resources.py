#!/usr/bin/env python3
"""The pipeline's stages' memory and file descriptors during a chaos run.

    resources.py sample PIDFILE FILE [INTERVAL]
    resources.py report DIR

sample: every INTERVAL seconds (5), the first one INTERVAL in, until
SIGTERM (which it answers within half a second), find the stages
(pg-capture, cdc-filter, cdc-publish) of the running pipeline, the session
whose id PIDFILE holds (chaos.sh's pipeline.pid, as its stage_pid does),
and append one line per stage to FILE: "TIME STAGE PID RSS_KB FDS",
tab-separated, TIME in seconds since the epoch, RSS_KB the VmRSS of
/proc/PID/status, FDS the number of entries in /proc/PID/fd. A stage not
running at that moment (the pipeline is restarting) has no line.

report: from DIR/resources.tsv, one line per stage: the samples, RSS and
open fds as the median of the first tenth of the samples, the median of
the last tenth and the maximum, the pids seen (1 + the restarts), the
longest any one of them was sampled, and a verdict: "flat" when the last
tenth's median RSS is at most 20% above the first tenth's and the last
tenth's median fds at most 2 above, else "GROWING". Exits 0 when every
stage is flat, 3 when one is GROWING, 2 when there are no samples.
"""

import os
import signal
import statistics
import sys
import time

STAGES = ("pg-capture", "cdc-filter", "cdc-publish")
stop = False


def on_term(*_):
    global stop
    stop = True


def stages_of(sid):
    """{stage name: pid} of the processes of session sid, the lowest pid
    of each name, as ps lists them."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields: state ppid pgrp session ...
        if comm in STAGES and fields[3] == sid:
            pid = int(name)
            found[comm] = min(pid, found.get(comm, pid))
    return found


def usage_of(pid):
    """(RSS kB, open fds) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), None)
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, StopIteration, ValueError):
        return None
    return None if rss is None else (rss, fds)


def sample(pidfile, path, interval):
    signal.signal(signal.SIGTERM, on_term)
    with open(path, "a") as out:
        while True:
            # the first sample one interval in: the stages have started
            # before, and been busy for a while, not at their first event
            end = time.time() + interval
            while not stop and time.time() < end:
                time.sleep(max(0, min(0.5, end - time.time())))
            if stop:
                return
            try:
                with open(pidfile) as f:
                    sid = f.read().strip()
            except OSError:
                sid = ""
            if sid:
                t = time.time()
                for name, pid in sorted(stages_of(sid).items()):
                    u = usage_of(pid)
                    if u:
                        out.write("%.3f\t%s\t%d\t%d\t%d\n" % (t, name, pid, u[0], u[1]))
                out.flush()


def report(d):
    rows = {}
    path = os.path.join(d, "resources.tsv")
    if os.path.exists(path):
        for line in open(path):
            t, name, pid, rss, fds = line.split()
            rows.setdefault(name, []).append((float(t), int(pid), int(rss), int(fds)))
    print("resources: each stage every 5 s while the load ran (RSS in kB; first/last: median of the first/last tenth)")
    fmt = "%-12s %7s %9s %9s %9s %9s %9s %8s %5s %10s  %s"
    print(fmt % ("stage", "samples", "rss first", "rss last", "rss max", "fds first", "fds last", "fds max", "pids",
                 "longest s", "verdict"))
    growing = 0
    for name in STAGES:
        s = sorted(rows.get(name, []))
        if not s:
            print(fmt % ((name, 0) + ("-",) * 8 + ("no samples",)))
            continue
        tenth = max(1, len(s) // 10)
        rss1 = statistics.median(x[2] for x in s[:tenth])
        rssn = statistics.median(x[2] for x in s[-tenth:])
        fds1 = statistics.median(x[3] for x in s[:tenth])
        fdsn = statistics.median(x[3] for x in s[-tenth:])
        life = {}
        for t, pid, _, _ in s:
            a, _ = life.get(pid, (t, t))
            life[pid] = (a, t)
        longest = max(b - a for a, b in life.values())
        flat = rssn <= rss1 * 1.2 and fdsn <= fds1 + 2
        growing += not flat
        print(fmt % (name, len(s), "%.0f" % rss1, "%.0f" % rssn, max(x[2] for x in s), "%g" % fds1, "%g" % fdsn,
                     max(x[3] for x in s), len(life), "%.0f" % longest, "flat" if flat else "GROWING"))
    if not rows:
        return 2
    return 3 if growing else 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 5.0)
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "report":
        return report(sys.argv[2])
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
