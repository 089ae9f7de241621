-- Typed columns: how each type's text form becomes a JSON value.
-- Every statement outside BEGIN/COMMIT is its own transaction.
-- wal2json itself sends NaN and infinities of numeric and float columns as
-- JSON null, so expected.wal2json has null where expected.pgoutput has
-- "NaN", "Infinity", "-Infinity".
CREATE TABLE typed (
	id int4 PRIMARY KEY,
	i2 int2,
	i8 int8,
	num numeric,
	f8 float8,
	f4 float4,
	flag bool,
	txt text,
	js json,
	jsb jsonb,
	at timestamptz,
	uid uuid,
	arr int4[],
	"Odd ""name""" text
);

INSERT INTO typed VALUES (1, 32767, 9223372036854775807, 12345.678901234567890123, 3.5, 0.25,
	true, 'it''s "quoted" \ back', '{"a": [1, 2], "b": "x"}', '{"k": "v", "n": 1.50}',
	'2024-02-29 12:34:56.789012+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	'{1,2,3}', 'plain');

INSERT INTO typed VALUES (2, -32768, -9223372036854775808, 'NaN', 'Infinity', '-Infinity',
	false, E'line1\nline2\r\n\ttab', E'{\n  "x": null,\n  "y": "a\\nb"\n}', '[1, "two", {"three": 3.0}]',
	'1999-12-31 23:59:59+05', '00000000-0000-0000-0000-000000000000', '{}', '');

INSERT INTO typed (id) VALUES (3);

BEGIN;
INSERT INTO typed (id, num, f8, txt) VALUES (4, '-0.000120', '-0', 'ünïcödé ✓ 😀 日本');
INSERT INTO typed (id, num, f8, f4, txt) VALUES (5, 'Infinity', '1e-7', 'NaN', E'ctl \x01\x1f end');
UPDATE typed SET i2 = 7, f8 = '1e300', flag = NULL, txt = 'changed' WHERE id = 1;
COMMIT;

UPDATE typed SET js = '"just a string"', jsb = 'null', at = '2000-01-01 00:00:00+00' WHERE id = 3;

DELETE FROM typed WHERE id = 2;

DELETE FROM typed WHERE id IN (4, 5);
