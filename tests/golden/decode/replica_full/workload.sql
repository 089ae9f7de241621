-- REPLICA IDENTITY FULL: updates and deletes carry the whole old row.
CREATE TABLE accounts (
	id int PRIMARY KEY,
	owner text,
	balance numeric
);
ALTER TABLE accounts REPLICA IDENTITY FULL;

-- no primary key at all
CREATE TABLE events (
	at timestamptz,
	what text
);
ALTER TABLE events REPLICA IDENTITY FULL;

INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', NULL);
INSERT INTO events VALUES ('2024-01-01 00:00:00+00', 'opened');

UPDATE accounts SET balance = 150.25 WHERE id = 1;
UPDATE accounts SET owner = 'robert', balance = 0 WHERE id = 2;
UPDATE events SET what = 'reopened';
DELETE FROM accounts WHERE id = 1;
DELETE FROM events;

-- with REPLICA IDENTITY FULL the old row carries the TOASTed value in full
CREATE TABLE full_docs (
	id int PRIMARY KEY,
	title text,
	body text
);
ALTER TABLE full_docs ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE full_docs REPLICA IDENTITY FULL;
INSERT INTO full_docs VALUES (1, 'first', repeat('abcdefghij', 1100));
UPDATE full_docs SET title = 'renamed' WHERE id = 1;
DELETE FROM full_docs WHERE id = 1;
