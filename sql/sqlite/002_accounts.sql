-- 002_accounts.sql - accounts, sessions and sign-in throttling.
--
-- As in 001: nothing here identifies a person without the keyring.  The
-- login name and the password hash are sealed fields; the login is found
-- through a blind index; activation codes and session tokens are stored as
-- keyed or plain hashes only.

CREATE TABLE accounts (
    rid INTEGER PRIMARY KEY,
    id  BLOB NOT NULL CHECK (length(id) = 16),
    role  TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('provisioned', 'active', 'locked', 'disabled', 'frozen')),
    compartment TEXT NOT NULL,
    establishment_id BLOB REFERENCES establishments(id),
    person_id BLOB,                                 -- student, guardian or staff id
    login_idx BLOB NOT NULL,                        -- blind index of the login
    kv INTEGER NOT NULL,
    fields BLOB NOT NULL,                           -- sealed: login, password hash
    code_hash BLOB,                                 -- keyed hash of the activation code
    code_expires INTEGER NOT NULL DEFAULT 0,
    reset_required INTEGER NOT NULL DEFAULT 0,
    locked_reason TEXT,                             -- rule name, never personal data
    created INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_id ON accounts(id);
CREATE UNIQUE INDEX accounts_login ON accounts(login_idx);
CREATE INDEX accounts_state ON accounts(state, compartment);
CREATE INDEX accounts_establishment ON accounts(establishment_id);
CREATE INDEX accounts_person ON accounts(person_id);
CREATE INDEX accounts_kv ON accounts(compartment, kv);

-- Sessions: the token itself is never stored, only its BLAKE2b hash.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    account_id BLOB NOT NULL REFERENCES accounts(id),
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    expires INTEGER NOT NULL,                       -- absolute expiry
    mfa_level INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX sessions_account ON sessions(account_id);

-- Failed sign-in and activation attempts per login (known or not, so that
-- throttling says nothing about which logins exist), keyed by a blind index.
CREATE TABLE throttle (
    key BLOB PRIMARY KEY,
    failures INTEGER NOT NULL,
    until INTEGER NOT NULL,                         -- no attempt before (ms)
    updated INTEGER NOT NULL                        -- last failure (ms)
) WITHOUT ROWID;
