-- 004_canaries.sql - which records are canaries (DESIGN.md §7): people who
-- look like any other but belong to no class and no guardian; any read of
-- one is an attack.  The list itself is sealed like a record's fields, one
-- row per batch of ids, so a stolen store does not say which people are
-- canaries (they would be avoided).
CREATE TABLE canary_sets (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    created INTEGER NOT NULL
);
CREATE UNIQUE INDEX canary_sets_id ON canary_sets(id);
