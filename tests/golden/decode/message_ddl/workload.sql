-- Messages under the DDL capture prefix "pgcdc.ddl", written by hand as
-- the trigger of pg-capture --install-ddl-capture would (json_build_object's
-- spacing) and not: a ddl event takes the object's members, compacted,
-- "schema" and "table" right after "op" when both are there, strings
-- escaped as every line is (U+2028 in the SQL text); anything that is not
-- such an object stays a message event: not JSON, an array, no "command",
-- a member an event line has itself ("id"), text that is not UTF-8, a
-- second "table", trailing text, and a non-transactional message.
CREATE TABLE items (
	id int PRIMARY KEY,
	title text
);

BEGIN;
INSERT INTO items VALUES (1, 'before');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', json_build_object(
	'command', 'ALTER TABLE', 'object_type', 'table', 'identity', 'public.items',
	'schema', 'public', 'table', 'items',
	'sql', E'ALTER TABLE items ADD COLUMN qty int -- ünï \u2028 "q"',
	'columns', json_build_array(
		json_build_object('name', 'id', 'type', 'integer', 'not_null', true, 'primary_key', true),
		json_build_object('name', 'qty', 'type', 'numeric(8,2)', 'not_null', false, 'primary_key', false)))::text);
INSERT INTO items VALUES (2, 'after');
COMMIT;

SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"command":"CREATE FUNCTION","object_type":"function","identity":"public.answer()","schema":"public","sql":"CREATE FUNCTION answer() ..."}');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"command" : "GRANT", "object_type" : "TABLE", "sql" : "GRANT SELECT ON items TO PUBLIC", "n" : 1.50e3, "t" : [true, false, null, {}]}  ');

BEGIN;
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', 'not json');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '[{"command":"DROP TABLE"}]');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"object_type":"table"}');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"command":"DROP TABLE","id":"0/0:0"}');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '\x7b22636f6d6d616e64223a22e9227d'::bytea);
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"command":"DROP TABLE","table":"a","table":"b"}');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"command":"DROP TABLE"} x');
SELECT pg_logical_emit_message(true, 'pgcdc.ddl', '{"command":"DROP TABLE","sql":"bad \q escape"}');
COMMIT;

SELECT pg_logical_emit_message(false, 'pgcdc.ddl', '{"command":"CREATE TABLE"}');
