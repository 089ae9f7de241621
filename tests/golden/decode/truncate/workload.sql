-- TRUNCATE of several tables at once, with CASCADE and RESTART IDENTITY,
-- and a plain one. wal2json does not say whether CASCADE or RESTART
-- IDENTITY was given: expected.wal2json has false for both.
CREATE TABLE parent (
	id serial PRIMARY KEY,
	name text
);
CREATE TABLE child (
	id serial PRIMARY KEY,
	parent_id int REFERENCES parent (id)
);
CREATE TABLE other (
	id int PRIMARY KEY
);

INSERT INTO parent (name) VALUES ('p1'), ('p2');
INSERT INTO child (parent_id) VALUES (1), (2);
INSERT INTO other VALUES (1);

TRUNCATE parent, other RESTART IDENTITY CASCADE;

INSERT INTO other VALUES (2);
TRUNCATE other;

BEGIN;
INSERT INTO parent (name) VALUES ('p3');
TRUNCATE child;
COMMIT;
