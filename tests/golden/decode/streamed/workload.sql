-- Recorded with proto_version 2, streaming on and logical_decoding_work_mem
-- 64kB (see the file "streaming"): the big transactions come as streams.
CREATE TABLE s (id int PRIMARY KEY, v text);
CREATE TABLE late (id int PRIMARY KEY, note text);
-- streamed and committed: rows, a savepoint rolled back, one released,
-- a table first described inside a subtransaction that is rolled back,
-- a transactional message
BEGIN;
INSERT INTO s SELECT i, repeat('k', 400) FROM generate_series(1, 200) i;
SAVEPOINT a;
INSERT INTO s SELECT i, repeat('g', 400) FROM generate_series(201, 400) i;
ROLLBACK TO a;
SAVEPOINT b;
INSERT INTO s SELECT i, 'released' FROM generate_series(401, 405) i;
RELEASE b;
SAVEPOINT c;
INSERT INTO late SELECT i, repeat('g', 400) FROM generate_series(1, 200) i;
ROLLBACK TO c;
INSERT INTO late VALUES (1, 'kept');
SELECT pg_logical_emit_message(true, 'app', 'inside');
UPDATE s SET v = 'updated' WHERE id <= 3;
COMMIT;
-- streamed and rolled back
BEGIN;
INSERT INTO s SELECT i, repeat('r', 400) FROM generate_series(1001, 1200) i;
ROLLBACK;
-- small, not streamed
INSERT INTO s VALUES (0, 'small');
