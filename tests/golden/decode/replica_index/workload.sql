-- REPLICA IDENTITY USING INDEX on a table that also has a primary key:
-- the old key tuple carries the index's columns, which are the event's
-- key; nothing the server did not send is shown (no "id":null).
CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL, name text);
CREATE UNIQUE INDEX accounts_code ON accounts (code);
ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_code;

INSERT INTO accounts VALUES (1, 'A-1', 'first'), (2, 'B-2', 'second');
UPDATE accounts SET name = 'renamed' WHERE id = 1;
UPDATE accounts SET code = 'A-9' WHERE id = 1;
DELETE FROM accounts WHERE id = 2;
