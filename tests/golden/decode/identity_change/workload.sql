-- The replica identity changes while the stream runs: every change is
-- keyed by the identity it was made under, and a schema line says so.
UPDATE t SET v = 'a1' WHERE id = 1;
ALTER TABLE t REPLICA IDENTITY USING INDEX t_u;
DELETE FROM t WHERE id = 2;
ALTER TABLE t REPLICA IDENTITY FULL;
UPDATE t SET v = 'c1' WHERE id = 3;
ALTER TABLE t REPLICA IDENTITY DEFAULT;
UPDATE t SET v = 'a2' WHERE id = 1;
DELETE FROM t WHERE id = 3;
