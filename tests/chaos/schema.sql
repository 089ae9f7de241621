-- Ground truth for the chaos run. items is what the load changes; every
-- change of a row is stamped with a per-key sequence number (taken under a
-- lock on the key's keyseq row, held to commit, so for one key the numbers
-- follow commit order) and written to ledger by an AFTER row trigger in the
-- same transaction: a rolled-back change leaves no ledger row.
CREATE TABLE items (id int PRIMARY KEY, val text NOT NULL, ver bigint NOT NULL DEFAULT 0);
-- whole old rows, so a delete event names the version it deleted
ALTER TABLE items REPLICA IDENTITY FULL;
CREATE TABLE keyseq (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE ledger (
	n bigserial PRIMARY KEY,
	txid bigint NOT NULL,
	item int NOT NULL,
	op text NOT NULL,           -- insert, update, delete
	ver bigint NOT NULL,        -- this change's number in its key's sequence
	prev_ver bigint,            -- the version it replaced (update, delete)
	val text,
	at timestamptz NOT NULL
);

CREATE FUNCTION items_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	k int := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
	s bigint;
BEGIN
	INSERT INTO keyseq VALUES (k, 1)
		ON CONFLICT (id) DO UPDATE SET n = keyseq.n + 1 RETURNING n INTO s;
	IF TG_OP = 'DELETE' THEN
		RETURN OLD;
	END IF;
	NEW.ver := s;
	RETURN NEW;
END $$;

CREATE FUNCTION items_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO ledger (txid, item, op, ver, prev_ver, val, at)
			SELECT txid_current(), OLD.id, 'delete', n, OLD.ver, OLD.val, clock_timestamp()
			FROM keyseq WHERE id = OLD.id;
	ELSE
		INSERT INTO ledger (txid, item, op, ver, prev_ver, val, at)
			VALUES (txid_current(), NEW.id, lower(TG_OP), NEW.ver,
			        CASE WHEN TG_OP = 'UPDATE' THEN OLD.ver END, NEW.val, clock_timestamp());
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER a_stamp BEFORE INSERT OR UPDATE OR DELETE ON items
	FOR EACH ROW EXECUTE FUNCTION items_stamp();
CREATE TRIGGER z_record AFTER INSERT OR UPDATE OR DELETE ON items
	FOR EACH ROW EXECUTE FUNCTION items_record();
