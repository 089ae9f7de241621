-- Characters Unicode-aware line readers split lines at (U+0085 NEL,
-- U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR) are escaped in
-- strings, names and embedded json/jsonb alike.
CREATE TABLE notes (id int PRIMARY KEY, body text, doc jsonb, raw json, "a b" text);
INSERT INTO notes VALUES (1, E'one\u2028two\u2029three\u0085four', jsonb_build_object(E'k\u2028', E'v\u2029'),
	json_build_object('x', E'\u0085'), E'\u2028');
