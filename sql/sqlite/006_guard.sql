-- 006_guard.sql - what the guard must remember across a restart, and bulk
-- exports (DESIGN.md section 7).  Nothing here names a person: actors are
-- account ids, subjects never appear, an export's file is sealed to its
-- requester's public key (the server cannot open it again).

-- One row per alert that made the guard deny (canary, budget, address):
-- the rule, the actor, the client address, the counts, what was done.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    compartment TEXT NOT NULL,                      -- the actor's académie
    rule TEXT NOT NULL,
    account_id BLOB CHECK (account_id IS NULL OR length(account_id) = 16),
    addr TEXT NOT NULL,
    count INTEGER NOT NULL,
    limit_ INTEGER NOT NULL,
    action TEXT NOT NULL
);
CREATE INDEX alerts_compartment ON alerts(compartment, id);

-- Address blocks, restored into the guard at start until they end.  The
-- address is kept as the audit trail keeps it (pseudonymous, no more).
CREATE TABLE guard_blocks (
    addr TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Bulk exports: requested, approved by a second account with a fresh
-- second factor, produced once, downloaded once by the requester.
CREATE TABLE exports (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    compartment TEXT NOT NULL,
    requester BLOB NOT NULL CHECK (length(requester) = 16),
    scope_kind TEXT NOT NULL CHECK (scope_kind IN ('establishment', 'class')),
    scope_id BLOB NOT NULL CHECK (length(scope_id) = 16),
    reason TEXT NOT NULL,                           -- a reason code, never free text
    recipient_key BLOB NOT NULL CHECK (length(recipient_key) = 32),
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'downloaded')),
    approver BLOB CHECK (approver IS NULL OR length(approver) = 16),
    rows INTEGER NOT NULL DEFAULT 0,
    file BLOB,                                      -- sealed box; NULL once downloaded
    created INTEGER NOT NULL,
    decided INTEGER,
    downloaded INTEGER
) WITHOUT ROWID;
CREATE INDEX exports_compartment ON exports(compartment, created);
