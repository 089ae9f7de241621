-- Several transactions: one rolled back (absent), one with a rolled-back
-- savepoint (its changes absent), one touching no published table.
CREATE TABLE t (
	id int PRIMARY KEY,
	v text
);

BEGIN;
INSERT INTO t VALUES (1, 'a');
INSERT INTO t VALUES (2, 'b');
COMMIT;

BEGIN;
INSERT INTO t VALUES (3, 'rolled back');
UPDATE t SET v = 'rolled back' WHERE id = 1;
ROLLBACK;

BEGIN;
UPDATE t SET v = 'A' WHERE id = 1;
SAVEPOINT s1;
INSERT INTO t VALUES (4, 'savepoint rolled back');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO t VALUES (5, 'savepoint released');
RELEASE SAVEPOINT s2;
DELETE FROM t WHERE id = 2;
COMMIT;

-- temporary tables are not decoded: an empty transaction
BEGIN;
CREATE TEMP TABLE scratch (x int);
INSERT INTO scratch VALUES (1);
COMMIT;

INSERT INTO t VALUES (6, 'last');
