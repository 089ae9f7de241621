#!/usr/bin/env python3
"""Azure Storage queue client for the tests, independent of cdc-publish.

    azq.py ENDPOINT COMMAND [ARG...]

ENDPOINT is the account's queue endpoint, path-style for Azurite
(http://127.0.0.1:PORT/devstoreaccount1). Account name and key come from
AZQ_ACCOUNT and AZQ_KEY (default: Azurite's public development account).
Requests are signed with SharedKey (Python's hmac), the x-ms-version
cdc-publish pins.

    ready                  exit 0 once the service answers at all
    create QUEUE           create the queue (201, or 204 if it exists)
    delete QUEUE           delete it
    count QUEUE            approximate message count
    drain QUEUE            every message's text, base64-decoded, one a line,
                           in queue order; each is dequeued and stays
                           invisible for 10 minutes (nobody else reads them)
    peek QUEUE             up to 32 messages' raw MessageText, one a line
    put QUEUE TEXT         put one message with MessageText TEXT (as given)
    sas QUEUE PERMS        a service SAS for QUEUE (sp=PERMS, 1 hour), on stdout
"""
import base64
import datetime
import hashlib
import hmac
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

VERSION = "2021-12-02"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def sign(key, text):
    return base64.b64encode(hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()).decode()


def request(endpoint, account, key, verb, path, query=None, body=b""):
    """(status, body bytes, headers) of a SharedKey-signed request to endpoint + path."""
    query = query or {}
    url = endpoint.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    ctype = "application/xml" if body else ""
    upath = urllib.parse.urlparse(endpoint).path.rstrip("/") + path
    resource = "/" + account + upath + "".join(
        "\n%s:%s" % (k.lower(), v) for k, v in sorted((k.lower(), str(v)) for k, v in query.items()))
    sts = "\n".join([verb, "", "", str(len(body)) if body else "", "", ctype, "", "", "", "", "", "",
                     "x-ms-date:" + date, "x-ms-version:" + VERSION, resource])
    headers = {"x-ms-date": date, "x-ms-version": VERSION,
               "Authorization": "SharedKey %s:%s" % (account, sign(key, sts))}
    if body:
        headers["Content-Type"] = ctype
    # no body: no data, or urllib would add a Content-Type that is then not signed
    req = urllib.request.Request(url, data=body or None, method=verb, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def main():
    endpoint, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    import os
    account, key = os.environ.get("AZQ_ACCOUNT", ACCOUNT), os.environ.get("AZQ_KEY", KEY)

    def call(verb, path, query=None, body=b"", ok=(200, 201, 204)):
        status, data, headers = request(endpoint, account, key, verb, path, query, body)
        if status not in ok:
            sys.exit("azq: %s %s: HTTP %d %s" % (verb, path, status, data[:300].decode(errors="replace")))
        return data, headers

    if cmd == "ready":
        try:
            urllib.request.urlopen(endpoint, timeout=2)
        except urllib.error.HTTPError:
            pass
        return
    q = "/" + args[0]
    if cmd == "create":
        call("PUT", q)
    elif cmd == "delete":
        call("DELETE", q)
    elif cmd == "count":
        _, h = call("GET", q, {"comp": "metadata"})
        print(h["x-ms-approximate-messages-count"])
    elif cmd in ("drain", "peek"):
        while True:
            query = {"numofmessages": 32}
            query.update({"peekonly": "true"} if cmd == "peek" else {"visibilitytimeout": 600})
            data, _ = call("GET", q + "/messages", query)
            texts = [m.findtext("MessageText") for m in ET.fromstring(data).iter("QueueMessage")]
            for t in texts:
                if cmd == "peek":
                    print(t)
                else:
                    sys.stdout.write(base64.b64decode(t).decode("utf-8") + "\n")
            if cmd == "peek" or not texts:
                break
    elif cmd == "put":
        call("POST", q + "/messages", body=("<QueueMessage><MessageText>%s</MessageText></QueueMessage>" % args[1]).encode())
    elif cmd == "sas":
        expiry = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        sts = "\n".join([args[1], "", expiry, "/queue/%s/%s" % (account, args[0]), "", "", "https,http", VERSION])
        print(urllib.parse.urlencode({"sv": VERSION, "se": expiry, "sp": args[1], "spr": "https,http", "sig": sign(key, sts)}))
    else:
        sys.exit("azq: unknown command " + cmd)


if __name__ == "__main__":
    main()
