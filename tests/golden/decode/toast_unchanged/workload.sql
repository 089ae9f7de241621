-- An update that does not touch a TOASTed value: pgoutput sends it as
-- "unchanged" ('u'), wal2json leaves the column out.
CREATE TABLE docs (
	id int PRIMARY KEY,
	title text,
	body text
);
-- stored out of line and uncompressed, whatever the content
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;

INSERT INTO docs VALUES (1, 'first', repeat('0123456789', 1100));
INSERT INTO docs VALUES (2, 'small', 'short body, stored inline');

UPDATE docs SET title = 'renamed' WHERE id = 1;
UPDATE docs SET title = 'renamed too' WHERE id = 2;
UPDATE docs SET body = 'now short' WHERE id = 1;
DELETE FROM docs WHERE id = 1;

