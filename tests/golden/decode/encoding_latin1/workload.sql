-- A LATIN1 database: names and values leave as UTF-8 for both plugins
-- (pgoutput converted by the server, wal2json by pg-capture).
CREATE TABLE "café" (id int PRIMARY KEY, "größe" text, note varchar(20));
INSERT INTO "café" VALUES (1, 'Ærø ½ ¿Qué? ÿ', 'naïve');
UPDATE "café" SET "größe" = 'déjà vu' WHERE id = 1;
DELETE FROM "café" WHERE id = 1;
