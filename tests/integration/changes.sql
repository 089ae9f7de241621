-- T1: a small tree
INSERT INTO workitems (id, parent_id, title, estimate, meta) VALUES
	(1, NULL, 'Release 2.0', 40.5, '{"labels": ["release"], "prio": 1}'),
	(2, 1, 'Backend', 20, NULL),
	(3, 1, 'Frontend', 20, '{"owner": "ana"}'),
	(4, 2, 'API "v2"', 8.25, NULL),
	(5, 2, 'Migrations', 4, NULL);
-- T2: a child starts; the trigger moves 2 and 1 to in_progress
UPDATE workitems SET status = 'in_progress' WHERE id = 4;
-- T3: both children of 2 done; the trigger makes 2 done
UPDATE workitems SET status = 'done' WHERE id IN (4, 5);
-- T4: comments, one far larger than a page
INSERT INTO comments (id, workitem_id, body) VALUES
	(1, 4, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 500) i)),
	(2, 5, E'short\nwith "quotes" and é');
INSERT INTO audit_log VALUES (1, 'created'), (2, 'commented'), (3, 'watched');
-- T5: edit a comment without touching its body
UPDATE comments SET edited = edited + 1 WHERE id = 1;
-- T6: watchers with full old rows
BEGIN;
INSERT INTO item_watchers VALUES (1, 'ana', 'all'), (1, 'bo', 'mentions');
UPDATE item_watchers SET level = 'none' WHERE user_name = 'bo';
DELETE FROM item_watchers WHERE user_name = 'ana';
COMMIT;
-- T7: rolled back, must not appear
BEGIN;
INSERT INTO workitems (id, title) VALUES (99, 'never');
UPDATE workitems SET title = 'never' WHERE id = 1;
ROLLBACK;
-- T8: a logical message
SELECT pg_logical_emit_message(true, 'workitems', 'refresh board 1') IS NOT NULL;
-- T9: a bulk load in one transaction
INSERT INTO audit_log SELECT i, 'bulk ' || i FROM generate_series(1, 100000) i;
-- T10: truncate
TRUNCATE audit_log;
-- T11: delete a leaf
DELETE FROM comments WHERE workitem_id = 5;
DELETE FROM workitems WHERE id = 5;
