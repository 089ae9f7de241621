-- Logical decoding messages: transactional ones belong to their
-- transaction, non-transactional ones stand alone (even when their
-- transaction rolls back); content that is not UTF-8 goes out as base64.
-- wal2json prints content up to its first NUL byte, so the binary message
-- has "content":"" in expected.wal2json.
CREATE TABLE notes (
	id int PRIMARY KEY,
	note text
);

SELECT pg_logical_emit_message(false, 'app', 'non-transactional hello');

BEGIN;
INSERT INTO notes VALUES (1, 'with a message');
SELECT pg_logical_emit_message(true, 'app', E'transactional "quoted"\nsecond line');
SELECT pg_logical_emit_message(true, 'bin', '\x00ff'::bytea);
COMMIT;

-- a transaction holding only a message
SELECT pg_logical_emit_message(true, 'ünï/prefix', 'ünïcödé content');

SELECT pg_logical_emit_message(true, 'empty', '');

BEGIN;
SELECT pg_logical_emit_message(false, 'app', 'sent although rolled back');
SELECT pg_logical_emit_message(true, 'app', 'rolled back: absent');
INSERT INTO notes VALUES (2, 'rolled back: absent');
ROLLBACK;

