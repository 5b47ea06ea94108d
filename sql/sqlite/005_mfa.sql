-- 005_mfa.sql - second factors (issue 4, docs/mfa.md).
--
-- As everywhere: nothing here identifies a person, and nothing lets a
-- thief of the store pass a second factor.  TOTP secrets and security-key
-- credentials are sealed fields (kind "mfa_factor"); recovery codes are
-- keyed hashes bound to their account; WebAuthn challenges are random
-- bytes bound to one session, single use, expiring.

-- When the session last passed a second factor (seconds; 0: never).
ALTER TABLE sessions ADD COLUMN mfa_at INTEGER NOT NULL DEFAULT 0;

-- One row per factor: kind 'totp' (one per account) or 'webauthn' (several).
-- active = 0: a TOTP enrollment waiting for its first code, bound to the
-- session (token hash) that asked for it.  counter: TOTP, the last time
-- step accepted (each step once only); WebAuthn, the last signature counter.
CREATE TABLE mfa_factors (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    account_id BLOB NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL CHECK (kind IN ('totp', 'webauthn')),
    active INTEGER NOT NULL DEFAULT 0,
    session_hash BLOB,
    compartment TEXT NOT NULL, kv INTEGER NOT NULL, fields BLOB NOT NULL,
    counter INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL, last_used INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX mfa_factors_id ON mfa_factors(id);
CREATE INDEX mfa_factors_account ON mfa_factors(account_id);

-- Recovery codes: a keyed hash each; used = when it was spent (0: unused).
CREATE TABLE mfa_recovery (
    account_id BLOB NOT NULL REFERENCES accounts(id),
    code_hash BLOB NOT NULL CHECK (length(code_hash) = 32),
    used INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    PRIMARY KEY (account_id, code_hash)
) WITHOUT ROWID;

-- WebAuthn challenges: one per session and purpose, replaced by a new one,
-- deleted when used.
CREATE TABLE mfa_challenges (
    session_hash BLOB NOT NULL CHECK (length(session_hash) = 32),
    purpose TEXT NOT NULL CHECK (purpose IN ('register', 'assert')),
    challenge BLOB NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (session_hash, purpose)
) WITHOUT ROWID;
