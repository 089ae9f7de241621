-- An update that changes the primary key carries the old key; one that
-- does not carries no old tuple.
CREATE TABLE items (
	id int PRIMARY KEY,
	name text
);
-- composite key
CREATE TABLE pairs (
	a int,
	b text,
	v text,
	PRIMARY KEY (a, b)
);

INSERT INTO items VALUES (1, 'one');
INSERT INTO pairs VALUES (1, 'x', 'first');

UPDATE items SET name = 'uno' WHERE id = 1;
UPDATE items SET id = 10 WHERE id = 1;
UPDATE items SET id = 11, name = 'eleven' WHERE id = 10;
UPDATE pairs SET b = 'y' WHERE a = 1;
UPDATE pairs SET v = 'second' WHERE a = 1;
DELETE FROM pairs;
