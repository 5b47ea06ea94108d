-- 003_teaching.sql - which staff member teaches which class (DESIGN.md §7:
-- teacher -> classes), the relationship the policy checks before a teacher
-- reads a pupil.  Same row shape as every record table (see 001).

CREATE TABLE teachings (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB NOT NULL REFERENCES staff(id),
    p1  BLOB NOT NULL REFERENCES classes(id),
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB, idx1 BLOB,
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX teachings_id ON teachings(id);
CREATE UNIQUE INDEX teachings_pair ON teachings(p0, p1);
CREATE INDEX teachings_p1 ON teachings(p1);
CREATE INDEX teachings_kv ON teachings(compartment, kv);
