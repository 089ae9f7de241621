-- A stored generated column: PostgreSQL 15's pgoutput leaves it out of the
-- Relation message and the tuples, wal2json includes it.
CREATE TABLE lines (
	id int PRIMARY KEY,
	qty int,
	price numeric,
	total numeric GENERATED ALWAYS AS (qty * price) STORED
);

INSERT INTO lines (id, qty, price) VALUES (1, 3, 2.50);
UPDATE lines SET qty = 4 WHERE id = 1;
DELETE FROM lines WHERE id = 1;
