-- bytea values in PostgreSQL's text form ("\x..." hex).
CREATE TABLE blobs (
	id int PRIMARY KEY,
	data bytea
);

INSERT INTO blobs VALUES (1, '\x00ff10'), (2, '\x'), (3, NULL);
UPDATE blobs SET data = 'text\000with nul'::bytea WHERE id = 3;
