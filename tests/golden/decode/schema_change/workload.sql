-- A table changing between transactions: a new schema event each time its
-- definition changes, none when it stays the same. And a table without
-- columns.
CREATE TABLE evolving (
	id int PRIMARY KEY,
	a text
);

INSERT INTO evolving VALUES (1, 'before');
INSERT INTO evolving VALUES (2, 'same definition: no new schema event');

ALTER TABLE evolving ADD COLUMN b int;
INSERT INTO evolving VALUES (3, 'added b', 3);

ALTER TABLE evolving RENAME COLUMN a TO a2;
UPDATE evolving SET b = 1 WHERE id = 1;

ALTER TABLE evolving DROP COLUMN b;
INSERT INTO evolving VALUES (4, 'dropped b');

ALTER TABLE evolving ALTER COLUMN id TYPE bigint;
UPDATE evolving SET a2 = 'id is bigint now' WHERE id = 4;

CREATE TABLE empty ();
INSERT INTO empty DEFAULT VALUES;
