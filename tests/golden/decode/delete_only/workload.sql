-- Deletes of rows the stream never showed, first events of their tables
-- (setup.sql ran before the slots): a delete names only the replica
-- identity's columns, from which wal2json's replay (no catalog) must tell
-- the table's key: DEFAULT, FULL with and without a primary key, USING
-- INDEX on a table whose primary key the delete does not carry.
DELETE FROM plain_pk WHERE id = 2;
DELETE FROM full_pk WHERE id = 2;
DELETE FROM by_index WHERE id = 2;
DELETE FROM full_nopk;
