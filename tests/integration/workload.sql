-- The first users' shape: work items in a tree whose parent status a trigger
-- derives from its children, comments with large bodies, watchers with
-- REPLICA IDENTITY FULL, and an audit log without a primary key.
CREATE TABLE workitems (
	id bigint PRIMARY KEY,
	parent_id bigint REFERENCES workitems (id),
	title text NOT NULL,
	status text NOT NULL DEFAULT 'todo',
	estimate numeric(8,2),
	blocked boolean NOT NULL DEFAULT false,
	meta jsonb,
	updated_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00'
);

CREATE FUNCTION derive_parent_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	derived text;
BEGIN
	IF NEW.parent_id IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT CASE WHEN bool_and(status = 'done') THEN 'done'
	            WHEN bool_or(status <> 'todo') THEN 'in_progress'
	            ELSE 'todo' END
	  INTO derived FROM workitems WHERE parent_id = NEW.parent_id;
	UPDATE workitems SET status = derived
	 WHERE id = NEW.parent_id AND status IS DISTINCT FROM derived;
	RETURN NULL;
END $$;

CREATE TRIGGER derive_parent AFTER INSERT OR UPDATE OF status ON workitems
	FOR EACH ROW EXECUTE FUNCTION derive_parent_status();

CREATE TABLE comments (
	id int PRIMARY KEY,
	workitem_id bigint NOT NULL REFERENCES workitems (id),
	body text NOT NULL,
	edited int NOT NULL DEFAULT 0
);
-- out of line and uncompressed: an update that leaves it alone sends no value
ALTER TABLE comments ALTER COLUMN body SET STORAGE EXTERNAL;

CREATE TABLE item_watchers (
	workitem_id bigint NOT NULL,
	user_name text NOT NULL,
	level text NOT NULL
);
ALTER TABLE item_watchers REPLICA IDENTITY FULL;

CREATE TABLE audit_log (
	at bigint NOT NULL,
	what text NOT NULL
);
