-- 001_init.sql - coffre's first schema (SQLite backend).
--
-- Every record table has the same columns (see src/store.h): an opaque
-- random id, up to two parent ids, the compartment and data-key version
-- that sealed the row, the sealed fields, up to two blind indexes and two
-- timestamps.  `rid` is SQLite's rowid: internal only, never shown, kept
-- so that rows append instead of landing at random in the table B-tree.
-- No column holds anything a person could be identified by.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Data keys wrapped (AEAD) under their compartment's KEK from the keyring.
CREATE TABLE data_keys (
    compartment TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    wrapped     BLOB    NOT NULL,
    created     INTEGER NOT NULL,
    PRIMARY KEY (compartment, version)
) WITHOUT ROWID;

CREATE TABLE establishments (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB, p1 BLOB,
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB,                                      -- UAI
    idx1 BLOB,
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX establishments_id  ON establishments(id);
CREATE UNIQUE INDEX establishments_idx0 ON establishments(idx0);
CREATE INDEX establishments_kv ON establishments(compartment, kv);

CREATE TABLE classes (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB NOT NULL REFERENCES establishments(id),
    p1  BLOB,
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB, idx1 BLOB,
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX classes_id ON classes(id);
CREATE INDEX classes_p0 ON classes(p0);
CREATE INDEX classes_kv ON classes(compartment, kv);

CREATE TABLE students (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB NOT NULL REFERENCES establishments(id),
    p1  BLOB REFERENCES classes(id),                -- division (class)
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB NOT NULL,                             -- INE
    idx1 BLOB,                                      -- e-mail
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX students_id ON students(id);
CREATE UNIQUE INDEX students_idx0 ON students(idx0);
CREATE INDEX students_idx1 ON students(idx1);
CREATE INDEX students_p0 ON students(p0);
CREATE INDEX students_p1 ON students(p1);
CREATE INDEX students_kv ON students(compartment, kv);

CREATE TABLE guardians (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB, p1 BLOB,
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB,
    idx1 BLOB,                                      -- e-mail
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX guardians_id ON guardians(id);
CREATE INDEX guardians_idx1 ON guardians(idx1);
CREATE INDEX guardians_kv ON guardians(compartment, kv);

-- guardian -> student, with the sealed relationship.
CREATE TABLE guardian_links (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB NOT NULL REFERENCES guardians(id),
    p1  BLOB NOT NULL REFERENCES students(id),
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB, idx1 BLOB,
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX guardian_links_id ON guardian_links(id);
CREATE UNIQUE INDEX guardian_links_pair ON guardian_links(p0, p1);
CREATE INDEX guardian_links_p1 ON guardian_links(p1);
CREATE INDEX guardian_links_kv ON guardian_links(compartment, kv);

CREATE TABLE staff (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    p0  BLOB NOT NULL REFERENCES establishments(id),
    p1  BLOB,
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    idx0 BLOB,
    idx1 BLOB NOT NULL,                             -- professional e-mail
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX staff_id ON staff(id);
CREATE UNIQUE INDEX staff_idx1 ON staff(idx1);
CREATE INDEX staff_p0 ON staff(p0);
CREATE INDEX staff_kv ON staff(compartment, kv);
