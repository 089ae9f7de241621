-- Values of every common type, domains among them, on a database whose
-- own settings (set by values.sh) would change their text; psql variables
-- give text in the database's encoding: tname, cname, txt.
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN posint2 AS posint;
CREATE DOMAIN flag AS boolean;
CREATE DOMAIN doc AS jsonb;
CREATE DOMAIN amount AS numeric(12,2);
CREATE DOMAIN label AS text;
CREATE SCHEMA s2;
CREATE TABLE s2.t2 (id int);

CREATE TABLE :"tname" (
	id int PRIMARY KEY,
	:"cname" text,
	i2 int2, i8 int8, o oid, f4 float4, f8 float8, num numeric, n2 numeric(10,3),
	b bool, by bytea, m money, d date, ts timestamp, tstz timestamptz, t time, tz timetz,
	iv interval, j json, jb jsonb, u uuid, ip inet, arr int[], tarr text[],
	dpos posint, dpos2 posint2, dflag flag, ddoc doc, damount amount, dlabel label,
	ch char(3), vc varchar(60), rc regclass
);

INSERT INTO :"tname" VALUES (1, :'txt',
	-32768, 9223372036854775807, 4294967295, 0.1, 1e300, 12345.678901234567890123, -0.5,
	true, '\x00ff41', 1234.56, '2024-02-29', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789+05',
	'23:59:59.999999', '10:00+03', '-1 year 2 mons 3 days -04:05:06.5', E'{\n "a": [1, 2.50],\n "t": "x"\n}',
	'{"k": [true, null, 1.50], "s": "v"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24',
	'{1,NULL,3}', '{"a b",c}', 42, 7, false, '{"d": 1}', 99.95, :'txt', 'ab', :'txt', 's2.t2');

INSERT INTO :"tname" (id, f4, f8, num, n2, by, m, iv, j, jb, ddoc, damount, dlabel)
	VALUES (2, 'NaN', 'Infinity', 'NaN', 'NaN', 'abc', -0.01, '0', '"s"', '[]', 'null', 0, '');
-- numeric infinities exist from PostgreSQL 14 on
SELECT current_setting('server_version_num')::int >= 140000 AS numeric_inf \gset
\if :numeric_inf
INSERT INTO :"tname" (id, f4, f8, num, by) VALUES (3, '-Infinity', '-0', '-Infinity', '');
\else
INSERT INTO :"tname" (id, f4, f8, num, by) VALUES (3, '-Infinity', '-0', NULL, '');
\endif
INSERT INTO :"tname" (id) VALUES (4);

-- REPLICA IDENTITY USING INDEX on a table with a primary key
CREATE TABLE ri_index (id int PRIMARY KEY, code text NOT NULL, v text);
CREATE UNIQUE INDEX ri_index_code ON ri_index (code);
ALTER TABLE ri_index REPLICA IDENTITY USING INDEX ri_index_code;
INSERT INTO ri_index VALUES (1, 'a', 'x'), (2, 'b', 'y');
UPDATE ri_index SET code = 'a2' WHERE id = 1;
UPDATE ri_index SET v = 'z' WHERE id = 2;
DELETE FROM ri_index WHERE id = 2;

-- REPLICA IDENTITY FULL without a primary key; an update leaves the
-- TOASTed column alone
CREATE TABLE ri_full (a int, body text, note text);
ALTER TABLE ri_full REPLICA IDENTITY FULL;
ALTER TABLE ri_full ALTER body SET STORAGE EXTERNAL;
INSERT INTO ri_full SELECT 1, string_agg(md5(i::text), ''), 'n' FROM generate_series(1, 300) i;
CREATE TABLE ri_full_before AS SELECT * FROM ri_full;
UPDATE ri_full SET note = 'm';
DELETE FROM ri_full;
