-- A non-transactional message right before a commit: its position can be
-- the commit record's, so its id must still differ from the first change's.
CREATE TABLE m (id int PRIMARY KEY);
BEGIN;
INSERT INTO m VALUES (1);
SELECT pg_logical_emit_message(false, 'app', 'outside') IS NOT NULL;
COMMIT;
