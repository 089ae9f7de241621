-- publish_via_partition_root: changes to a partition are published as
-- the root's; the server also describes the partition, which no event
-- names, so no schema line is written for it.
ALTER PUBLICATION p SET (publish_via_partition_root = true);
CREATE TABLE measures (id int, at date, v numeric, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measures_2026 PARTITION OF measures FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measures VALUES (1, '2026-03-01', 1.5);
UPDATE measures SET v = 2.5 WHERE id = 1;
DELETE FROM measures WHERE id = 1;
