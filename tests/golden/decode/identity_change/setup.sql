CREATE TABLE t (id int PRIMARY KEY, u int NOT NULL, v text);
CREATE UNIQUE INDEX t_u ON t (u);
INSERT INTO t VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c');
