#!/usr/bin/env python3
"""A scripted local HTTP/1.1 server for the cdc-publish tests.

It answers POSTs with a script of responses, so tests can produce the
failures a real broker cannot be made to: storms of 500s, Retry-After,
requests that hang, connections reset, slow answers. Every request is
logged as one JSON line, written and flushed as it arrives, so a test can
poll the log and assert exact bodies, order, headers and counts.

    httpstub.py --port 0 --port-file F --log LOG [--script S | --script-file F]
                [--default ACTION] [--fail-per-id N] [--latency MS] [--max-time SECS]
                [--tls-cert FILE [--tls-key FILE]] [--control FILE]

--port 0 picks a free port and writes it to --port-file (atomically: the
file appears complete once the server listens). Only 127.0.0.1 is bound.

The script is a list of actions applied to successive POSTs, separated by
commas (--script) or one per line (--script-file, where # starts a comment
and bodies may contain commas). After it, --default (200) answers. An
action:

    STATUS[:OPT]...        answer STATUS, e.g. 500, 429:retry-after=2,
                           400:body=no such queue, 200:body={"routed":true}
    slow:MS[:STATUS][:OPT]...   answer after MS milliseconds (MS may be a
                           range LO-HI: a random delay in it), default 200
    hang                   read the request, never answer; wait until the
                           client gives up and closes the connection
    reset                  read the request, close the connection with
                           SO_LINGER 0 (the client sees a reset)
    ACTION*N               the action N times (500*5)

OPTs: retry-after=V (a Retry-After header), retry-after-in=N (a Retry-After
HTTP-date N seconds from the answer), body=TEXT (the rest of the
action, so it comes last), header=NAME=VALUE, close (answer with
Connection: close).

--fail-per-id N answers 500 to the first N requests that carry each
distinct set of event ids (the "id" members of the events in the body, or
their "lsn" when they have none; a RabbitMQ body's payload counts), once
the script is used up; later requests get --default.

Log line members: n (1, 2, ...), t (arrival, seconds since the epoch, after
the body was read), conn (connection number: keep-alive reuse shows as the
same conn), method, path, headers (list of [name, value] in order), body
(text), ids (the event ids found in the body), action (what was done),
reply_at (when the answer was due: t plus the slow delay; null for hang).

--control FILE overrides all of that while FILE exists: its first line
is an action (as in the script, without *N) answered to every request
until FILE is removed; it is read again whenever it changes, so a test can
start and stop a storm of 503s, resets or hangs without restarting the
server. A file with a bad action answers 500.

--latency MS adds MS milliseconds to every answer (not to hang and reset),
like a network between client and server; 0 (the default) answers as soon
as it can.

--tls-cert FILE (PEM: the certificate, then any intermediates) and
--tls-key FILE (its private key; omit it when FILE holds the key too) make
it an HTTPS server: every connection is TLS, handshaken in its own thread.
A failed handshake (the client refused the certificate, say) is not a
request: it is not logged in --log, but written to stderr as one line,
"httpstub: TLS handshake failed: REASON".

The server exits by itself after --max-time seconds (300) so a test that
forgets it leaves nothing behind; kill it (SIGTERM) to stop it earlier.
"""

import argparse
import email.utils
import http.server
import itertools
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time


class Action:
    def __init__(self, kind, status=200, delay=None, retry_after=None, body=None,
                 headers=None, close=False, text=""):
        self.kind = kind              # "answer", "hang", "reset"
        self.status = status
        self.delay = delay            # (lo_ms, hi_ms) or None
        self.retry_after = retry_after
        self.retry_after_in = None
        self.body = body
        self.headers = headers or []
        self.close = close
        self.text = text

    def __repr__(self):
        return self.text


def parse_action(text):
    """One action (no *N). Raises ValueError on nonsense."""
    text = text.strip()
    if text == "hang":
        return Action("hang", text=text)
    if text == "reset":
        return Action("reset", text=text)
    parts = text.split(":")
    a = Action("answer", text=text)
    i = 0
    if parts[0] == "slow":
        if len(parts) < 2:
            raise ValueError("slow needs milliseconds: slow:500")
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", parts[1])
        if not m:
            raise ValueError("bad delay %r" % parts[1])
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        a.delay = (min(lo, hi), max(lo, hi))
        i = 2
        if i < len(parts) and re.fullmatch(r"\d{3}", parts[i]):
            a.status = int(parts[i])
            i += 1
    else:
        if not re.fullmatch(r"\d{3}", parts[0]):
            raise ValueError("unknown action %r" % text)
        a.status = int(parts[0])
        i = 1
    while i < len(parts):
        opt = parts[i]
        if opt.startswith("body="):
            a.body = ":".join(parts[i:])[5:]
            break
        if opt.startswith("retry-after="):
            a.retry_after = opt[len("retry-after="):]
        elif opt.startswith("retry-after-in="):
            a.retry_after_in = int(opt[len("retry-after-in="):])
        elif opt.startswith("header="):
            name, _, value = opt[len("header="):].partition("=")
            a.headers.append((name, value))
        elif opt == "close":
            a.close = True
        else:
            raise ValueError("unknown option %r in %r" % (opt, text))
        i += 1
    return a


def parse_script(items):
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        m = None if "body=" in item else re.fullmatch(r"(.*)\*(\d+)", item)
        if m:
            out.extend([parse_action(m.group(1))] * int(m.group(2)))
        else:
            out.append(parse_action(item))
    return out


def event_ids(body):
    """The ids of the events a request body carries, as a list of strings."""
    def ids_of(obj):
        if isinstance(obj, list):
            return [i for o in obj for i in ids_of(o)]
        if not isinstance(obj, dict):
            return []
        if "payload" in obj and "properties" in obj:     # RabbitMQ publish
            try:
                return ids_of(json.loads(obj["payload"]))
            except (ValueError, TypeError):
                return []
        for k in ("id", "lsn"):
            if isinstance(obj.get(k), str):
                return [obj[k]]
        return []

    try:
        return ids_of(json.loads(body))
    except ValueError:
        pass
    ids = []
    for line in body.splitlines():     # ndjson
        try:
            ids.extend(ids_of(json.loads(line)))
        except ValueError:
            pass
    return ids


class State:
    def __init__(self, script, default, fail_per_id, latency, logf, control=None):
        self.latency = latency
        self.control = control
        self.control_seen = None          # (mtime_ns, size) of the file last read
        self.control_action = None
        self.script = script
        self.default = default
        self.fail_per_id = fail_per_id
        self.per_id = {}
        self.lock = threading.Lock()
        self.n = 0
        self.logf = logf
        self.conns = itertools.count(1)

    def next(self, record):
        """Pick the action for a request and log it, under one lock so the
        log order is the order actions were handed out."""
        with self.lock:
            self.n += 1
            record["n"] = self.n
            override = self.control_override()
            if override:
                action = override
            elif self.script:
                action = self.script.pop(0)
            elif self.fail_per_id:
                key = "\n".join(record["ids"])
                seen = self.per_id.get(key, 0)
                self.per_id[key] = seen + 1
                action = parse_action("500") if seen < self.fail_per_id else self.default
            else:
                action = self.default
            record["action"] = action.text
            # when the answer goes out (at the earliest): lets a test tell
            # whether two requests were in flight together
            delay = random.uniform(*action.delay) / 1000.0 if action.delay else 0.0
            if action.kind == "answer":
                delay += self.latency
            record["reply_at"] = None if action.kind == "hang" else record["t"] + delay
            self.logf.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.logf.flush()
            return action, delay


    def control_override(self):
        """The action --control's file names, or None when there is none."""
        if not self.control:
            return None
        try:
            st = os.stat(self.control)
        except OSError:
            self.control_seen = self.control_action = None
            return None
        if self.control_seen != (st.st_mtime_ns, st.st_size):
            self.control_seen = (st.st_mtime_ns, st.st_size)
            try:
                with open(self.control) as f:
                    text = f.readline().strip()
                self.control_action = parse_action(text) if text else None
            except (OSError, ValueError):
                self.control_action = parse_action("500")
        return self.control_action


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "httpstub"
    sys_version = ""

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this the body
        # waits for the client's delayed ACK (40 ms per request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_no = next(self.server.state.conns)

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        if self.server.tls:
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as e:
                sys.stderr.write("httpstub: TLS handshake failed: %s\n" % e)
                sys.stderr.flush()
                self.close_connection = True
                return
        super().handle()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        body = self.read_body()
        text = body.decode("utf-8", "replace")
        record = {
            "t": time.time(),
            "conn": self.conn_no,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": text,
            "ids": event_ids(text),
        }
        action, delay = self.server.state.next(record)
        if action.kind == "hang":
            self.hang()
            return
        if action.kind == "reset":
            self.reset()
            return
        if delay:
            time.sleep(max(0.0, record["reply_at"] - time.time()))
        payload = (action.body if action.body is not None else
                   json.dumps({"status": action.status})).encode()
        self.send_response(action.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if action.retry_after is not None:
            self.send_header("Retry-After", action.retry_after)
        if action.retry_after_in is not None:
            # the HTTP-date form, that many seconds from now
            self.send_header("Retry-After", email.utils.formatdate(time.time() + action.retry_after_in, usegmt=True))
        for k, v in action.headers:
            self.send_header(k, v)
        if action.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    do_POST = do_PUT = do_GET = handle_any

    def hang(self):
        """Never answer: read until the client closes the connection."""
        self.close_connection = True
        self.connection.settimeout(None)
        try:
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    def reset(self):
        """Close abruptly: SO_LINGER 0 makes close() send a RST."""
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # close the descriptor itself: socket.close() would wait for rfile
        # and wfile to let go of it
        os.close(sock.detach())


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    tls = None                        # an ssl.SSLContext with --tls-cert

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls:
            # the handshake happens in the connection's thread (Handler.handle),
            # so a slow or failing client holds up no one else
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def shutdown_request(self, request):
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            request.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log", required=True)
    ap.add_argument("--script", default="")
    ap.add_argument("--script-file")
    ap.add_argument("--default", default="200")
    ap.add_argument("--fail-per-id", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0)
    ap.add_argument("--max-time", type=float, default=300)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--control")
    args = ap.parse_args()
    if args.tls_key and not args.tls_cert:
        ap.error("--tls-key needs --tls-cert")

    if args.seed is not None:
        random.seed(args.seed)
    try:
        items = args.script.split(",") if args.script else []
        if args.script_file:
            with open(args.script_file) as f:
                items += [l for l in f.read().splitlines() if not l.lstrip().startswith("#")]
        script = parse_script(items)
        default = parse_action(args.default)
    except ValueError as e:
        ap.error(str(e))
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            ap.error("--tls-cert/--tls-key: %s" % e)

    logf = open(args.log, "a", encoding="utf-8")
    server = Server(("127.0.0.1", args.port), Handler)
    server.tls = tls
    server.state = State(script, default, args.fail_per_id, args.latency / 1000.0, logf,
                         args.control)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    if args.port == 0 and not args.port_file:
        print(port, flush=True)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    t.join(args.max_time)
    os._exit(0)


if __name__ == "__main__":
    main()
