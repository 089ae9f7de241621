#!/usr/bin/env python3
"""Compare pg-capture's events with PostgreSQL's own rendering of the rows.

usage: oracle.py CONNINFO EVENTS PLUGIN TABLE

PostgreSQL is the oracle: each column's text form is read back with psql
under the settings pg-capture pins (whatever the database's own are), then
typed as cdc-json(7) says: numbers (a domain's by its base type) as JSON
numbers but NaN and infinities as strings, booleans, json and jsonb
embedded, everything else as the text. Prints TAP lines ("ok - ...").
"""
import json
import os
import subprocess
import sys
from decimal import Decimal

PINNED = ("-c datestyle=ISO,MDY -c intervalstyle=postgres -c extra_float_digits=3 "
          "-c timezone=UTC -c bytea_output=hex -c lc_monetary=C -c search_path=\"$user\",public")
NUMBER = {"i2", "i8", "o", "f4", "f8", "num", "n2", "dpos", "dpos2", "damount", "id"}
BOOL = {"b", "dflag"}
JSON = {"j", "jb", "ddoc"}
SPECIAL = {"NaN", "Infinity", "-Infinity"}

conninfo, events_path, plugin, table = sys.argv[1:5]
failed = 0


def report(ok, name, why=""):
    global failed
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        failed += 1
        print("#   " + why[:1500].replace("\n", "\n#   "))


def psql(query, encoding=None):
    env = dict(os.environ, PGOPTIONS=PINNED, PGCLIENTENCODING=encoding or client_encoding)
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", query],
                         env=env, capture_output=True, timeout=60, check=True).stdout
    # SQL_ASCII sends its bytes unconverted: pg-capture writes U+FFFD for a stray byte
    return out.decode("utf-8", errors="replace")


def rows_as_text(rel, cols):
    """{id: {col: text or None}} from a JSON object of text casts per row."""
    # format() uses the type's output function, as pg-capture's server does; a cast to text may not (bool, char(n))
    pairs = ", ".join("'%s', CASE WHEN %s IS NULL THEN NULL ELSE format('%%s', %s) END" %
                      (c.replace("'", "''"), q, q) for c in cols for q in ['"%s"' % c.replace('"', '""')])
    got = psql("SELECT json_agg(json_build_object(%s)) FROM %s" % (pairs, rel))
    return json.loads(got or "[]") or []


def expected(col, text):
    if text is None:
        return None
    if col in NUMBER:
        if text in SPECIAL:
            # wal2json before 2.6 has no numeric-data-types-as-string: null
            return None if plugin == "wal2json" and os.environ.get("W2J_NUMERIC_STRINGS") == "0" else text
        return Decimal(text)
    if col in BOOL:
        return text == "t"
    if col in JSON:
        return json.loads(text, parse_float=Decimal)
    return text


def same(a, b):
    """Equal JSON values, where true is not 1 and "1" is not 1."""
    if isinstance(a, (bool, str)) or isinstance(b, (bool, str)) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return not isinstance(a, (dict, list)) and not isinstance(b, (dict, list)) and a == b


# SQL_ASCII converts to nothing, and checks what it would send as UTF8
client_encoding = "UTF8"
client_encoding = "SQL_ASCII" if psql("SHOW server_encoding").strip() == "SQL_ASCII" else "UTF8"

# --- every line: valid UTF-8, one line for any line reader, JSON ------------
raw = open(events_path, "rb").read()
try:
    text = raw.decode("utf-8")
    report(True, f"{plugin}: every line is valid UTF-8")
except UnicodeDecodeError as e:
    report(False, f"{plugin}: every line is valid UTF-8", str(e))
    text = raw.decode("utf-8", errors="replace")
lines = text.split("\n")[:-1]
report(len(text.splitlines()) == len(lines), f"{plugin}: Unicode line breaks are escaped ({len(lines)} lines)",
       "str.splitlines() finds %d lines" % len(text.splitlines()))
events = [json.loads(l, parse_float=Decimal) for l in lines]

# --- the typed table: every value as PostgreSQL renders it ---------------
cols = json.loads(psql("SELECT json_agg(attname ORDER BY attnum) FROM pg_attribute "
                       "WHERE attrelid = '%s'::regclass AND attnum > 0 AND NOT attisdropped" % table))
relname = psql("SELECT json_build_array(n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n "
               "ON n.oid = c.relnamespace WHERE c.oid = '%s'::regclass" % table)
schema, name = json.loads(relname)
want = {r["id"]: r for r in rows_as_text(table, cols)}
inserts = [e for e in events if e["op"] == "insert" and e.get("table") == name and e.get("schema") == schema]
report(sorted(int(e["new"]["id"]) for e in inserts) == sorted(int(i) for i in want),
       f"{plugin}: one insert per row of {schema}.{name}", f"{len(inserts)} inserts, {len(want)} rows")
for e in inserts:
    rid = str(e["new"]["id"])
    exp = {c: expected(c, want[rid][c]) for c in cols}
    diffs = [f"{c}: got {e['new'].get(c, '<absent>')!r}, want {exp[c]!r}" for c in cols
             if c not in e["new"] or not same(e["new"][c], exp[c])]
    report(not diffs, f"{plugin}: row {rid}: every value as PostgreSQL renders it", "\n".join(diffs))
    report(e["key"] == {"id": int(rid)}, f"{plugin}: row {rid}: key", repr(e["key"]))

schema_lines = [e for e in events if e["op"] == "schema" and e["table"] == name]
if schema_lines:
    sl = schema_lines[0]
    report([c["name"] for c in sl["columns"]] == cols and
           [c["name"] for c in sl["columns"] if c["replica_identity"]] == ["id"],
           f"{plugin}: schema line names the columns and the identity", json.dumps(sl)[:600])
else:
    report(False, f"{plugin}: schema line for {name}")


# --- replica identities -------------------------------------------------------
def rows(tbl):
    return [e for e in events if e.get("table") == tbl and e["op"] in ("insert", "update", "delete")]


ri = [(e["op"], e["key"], e.get("old")) for e in rows("ri_index")]
report(ri == [("insert", {"code": "a"}, None), ("insert", {"code": "b"}, None),
              ("update", {"code": "a2"}, {"code": "a"}), ("update", {"code": "b"}, None),
              ("delete", {"code": "b"}, {"code": "b"})],
       f"{plugin}: USING INDEX: key and old carry the index column the server sent, nothing else", repr(ri))
sl = [e for e in events if e["op"] == "schema" and e["table"] == "ri_index"]
report(bool(sl) and sl[0]["replica_identity"] == "index" and
       [c["name"] for c in sl[0]["columns"] if c["replica_identity"]] == ["code"] and
       [c["name"] for c in sl[0]["columns"] if c["key"]] == ["code"],
       f"{plugin}: USING INDEX: the schema line names the identity", json.dumps(sl[:1])[:600])

before = rows_as_text("ri_full_before", ["a", "body", "note"])[0]
before = {"a": int(before["a"]), "body": before["body"], "note": before["note"]}
full = rows("ri_full")
upd = [e for e in full if e["op"] == "update"]
report(len(upd) == 1 and upd[0]["key"] == dict(before, note="m") and upd[0].get("old") == before and
       upd[0].get("unchanged") == ["body"] and "key_missing" not in upd[0],
       f"{plugin}: FULL: an update leaving a TOASTed column alone has the whole key, taken from the old row",
       json.dumps(upd, default=str)[:800])
dele = [e for e in full if e["op"] == "delete"]
report(len(dele) == 1 and dele[0]["key"] == dict(before, note="m") and dele[0]["old"] == dict(before, note="m"),
       f"{plugin}: FULL: delete key and old row", json.dumps(dele, default=str)[:300])

sys.exit(1 if failed else 0)
