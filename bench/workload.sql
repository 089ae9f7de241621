-- Benchmark workload on the users' schema (tests/integration/workload.sql),
-- loaded after it. Procedures commit as they go, so each COMMIT below is a
-- separate transaction in the WAL, the way an application would write them.
--
--   CALL bench_rounds(FIRST, LAST);  -- about 150 row changes in ~35 transactions per round
--   CALL bench_big(N);               -- a few large transactions, N rows in the largest

-- What an application with this schema would have; without them the parent
-- status trigger and the watcher updates scan whole tables. Indexes make no
-- row changes of their own.
CREATE INDEX IF NOT EXISTS workitems_parent ON workitems (parent_id);
CREATE INDEX IF NOT EXISTS comments_workitem ON comments (workitem_id);
CREATE INDEX IF NOT EXISTS item_watchers_workitem ON item_watchers (workitem_id);

-- One round: a project tree is created and worked on, comments and watchers
-- come and go, the audit log grows, an older project's epic gets finished.
-- Ids: project r is r*100, its epics r*100+1..3, its tasks r*100+10..33
-- (task t belongs to epic 1 + t/8), its comments r*100+0..11.
CREATE PROCEDURE bench_rounds(first int, last int) LANGUAGE plpgsql AS $$
DECLARE
	r int;
	base bigint;
	k int;
	t int;
BEGIN
	FOR r IN first..last LOOP
		base := r::bigint * 100;

		-- a new project: 1 + 3 + 24 inserts; the trigger runs on each and finds nothing to change
		INSERT INTO workitems (id, parent_id, title, estimate, meta)
			VALUES (base, NULL, 'Project ' || r, 120,
				jsonb_build_object('labels', jsonb_build_array('team-' || r % 7, 'q' || 1 + r % 4), 'prio', r % 3));
		INSERT INTO workitems (id, parent_id, title, estimate)
			SELECT base + e, base, 'Epic ' || r || '.' || e, 40 FROM generate_series(1, 3) g(e);
		INSERT INTO workitems (id, parent_id, title, estimate, meta)
			SELECT base + 10 + n, base + 1 + n / 8, 'Task ' || r || '.' || n || ': ' || md5(n::text || r),
				(n % 5) * 1.25 + 0.5,
				CASE WHEN n % 4 = 0 THEN jsonb_build_object('owner', 'user' || (r + n) % 13) END
			  FROM generate_series(0, 23) g(n);
		COMMIT;

		-- watchers on every other task (REPLICA IDENTITY FULL)
		INSERT INTO item_watchers
			SELECT base + 10 + n, 'user' || (r + n) % 13, (ARRAY['all', 'mentions', 'none'])[1 + n % 3]
			  FROM generate_series(0, 22, 2) g(n);
		COMMIT;

		-- comments, 3 transactions of 4; bodies of 33 to 396 bytes, one in
		-- twenty rounds a 12.8 kB body stored out of line
		FOR k IN 0..2 LOOP
			INSERT INTO comments (id, workitem_id, body)
				SELECT base + c, base + 10 + (c * 7) % 24,
					CASE WHEN c = 0 AND r % 20 = 0 THEN repeat(md5(r::text), 400)
					     ELSE repeat(md5((base + c)::text) || E'\n', 1 + (c + r) % 12) END
				  FROM generate_series(k * 4, k * 4 + 3) g(c);
			COMMIT;
		END LOOP;

		-- the audit log, 4 transactions of 10
		FOR k IN 1..4 LOOP
			INSERT INTO audit_log
				SELECT base * 100 + k * 10 + i, 'project ' || r || ' event ' || k || '.' || i
				  FROM generate_series(1, 10) g(i);
			COMMIT;
		END LOOP;

		-- the tasks of epic 1 are started one by one: the trigger moves the epic
		-- and the project to in_progress on the first
		FOR t IN 0..7 LOOP
			UPDATE workitems SET status = 'in_progress', updated_at = updated_at + interval '1 hour'
			 WHERE id = base + 10 + t;
			COMMIT;
		END LOOP;

		-- and finished two at a time: the last makes the epic done
		FOR t IN 0..6 BY 2 LOOP
			UPDATE workitems SET status = 'done', updated_at = updated_at + interval '2 hours'
			 WHERE id IN (base + 10 + t, base + 11 + t);
			COMMIT;
		END LOOP;

		-- comment edits that leave the body alone (TOAST unchanged), a few flags
		UPDATE comments SET edited = edited + 1 WHERE id BETWEEN base AND base + 5;
		COMMIT;
		UPDATE workitems SET blocked = true, meta = coalesce(meta, '{}') || '{"blocked_by": "review"}'
		 WHERE id IN (base + 20, base + 21);
		COMMIT;

		-- watcher preferences change (old rows in full)
		UPDATE item_watchers SET level = 'mentions' WHERE workitem_id IN (base + 12, base + 14, base + 24);
		COMMIT;

		-- unwatch, delete a comment; cancel a task with its comment and watcher
		DELETE FROM item_watchers WHERE workitem_id = base + 16;
		DELETE FROM comments WHERE id = base + 11;
		COMMIT;
		DELETE FROM item_watchers WHERE workitem_id = base + 32;
		DELETE FROM comments WHERE workitem_id = base + 32;
		DELETE FROM workitems WHERE id = base + 32;
		COMMIT;

		-- an older project: all of epic 2 done in one statement
		IF r > 5 THEN
			UPDATE workitems SET status = 'done', updated_at = updated_at + interval '1 day'
			 WHERE parent_id = (r - 5)::bigint * 100 + 2;
			COMMIT;
		END IF;
	END LOOP;
END $$;

-- Large transactions: an audit log import of n rows, then n/5 work items
-- blocked, n/5 comments edited, n/10 watchers removed, each in one transaction.
CREATE PROCEDURE bench_big(n int) LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit_log SELECT -i, 'import ' || i || ' ' || md5(i::text) FROM generate_series(1, n) g(i);
	COMMIT;
	UPDATE workitems SET blocked = true, updated_at = updated_at + interval '3 days'
	 WHERE id IN (SELECT id FROM workitems WHERE NOT blocked ORDER BY id LIMIT n / 5);
	COMMIT;
	UPDATE comments SET edited = edited + 1
	 WHERE id IN (SELECT id FROM comments ORDER BY id LIMIT n / 5);
	COMMIT;
	DELETE FROM item_watchers
	 WHERE workitem_id IN (SELECT DISTINCT workitem_id FROM item_watchers ORDER BY workitem_id LIMIT n / 10);
	COMMIT;
END $$;
