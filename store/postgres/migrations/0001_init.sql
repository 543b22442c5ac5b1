-- smartauth schema, version 1.
--
-- Every expiry is Unix nanoseconds (bigint), compared with the clock of the
-- process that reads it (postgres.Options.Now), never with SQL now(): the
-- same precision and the same decisions as the Badger store. Records are
-- the JSON the Badger store writes (type json keeps the bytes as written);
-- the other columns are what the queries select on. Secrets never appear:
-- codes, refresh tokens, session ids, launch ids and JWT ids are stored
-- as store.HashID of the secret. Identifiers that may come from a request
-- (client ids, user names, token ids) are bytea, the bytes Go holds, so that
-- any string is a valid key (text refuses NUL and invalid UTF-8) and the
-- order is byte order, as in Badger.

CREATE TABLE clients (
	id     bytea PRIMARY KEY,
	record json NOT NULL
);

CREATE TABLE auth_codes (
	id_hash    text PRIMARY KEY,
	used       boolean NOT NULL,
	expires_ns bigint NOT NULL,
	record     json NOT NULL
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_ns);

CREATE TABLE launches (
	id_hash    text PRIMARY KEY,
	expires_ns bigint NOT NULL,
	record     json NOT NULL
);
CREATE INDEX launches_expires ON launches (expires_ns);

CREATE TABLE sessions (
	id_hash    text PRIMARY KEY,
	expires_ns bigint NOT NULL,
	record     json NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_ns);

CREATE TABLE refresh_tokens (
	id_hash    text PRIMARY KEY,
	family     bytea NOT NULL,
	client_id  bytea NOT NULL,
	subject    bytea NOT NULL,
	used       boolean NOT NULL,
	expires_ns bigint NOT NULL,
	record     json NOT NULL
);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_ns);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);

CREATE TABLE used_jtis (
	id_hash    text PRIMARY KEY,
	expires_ns bigint NOT NULL
);
CREATE INDEX used_jtis_expires ON used_jtis (expires_ns);

CREATE TABLE consents (
	user_name  bytea NOT NULL,
	client_id  bytea NOT NULL,
	expires_ns bigint NOT NULL,
	record     json NOT NULL,
	PRIMARY KEY (user_name, client_id)
);
CREATE INDEX consents_expires ON consents (expires_ns);

-- revocations holds the live revocation of each identifier.
CREATE TABLE revocations (
	kind     text NOT NULL,
	id       bytea NOT NULL,
	at_ns    bigint NOT NULL,
	until_ns bigint NOT NULL,
	PRIMARY KEY (kind, id)
);
CREATE INDEX revocations_until ON revocations (until_ns);

-- revocation_log is what RevokedSince reads: one row per recorded
-- revocation, by the time it was recorded.
CREATE TABLE revocation_log (
	recorded_ns bigint NOT NULL,
	kind        text NOT NULL,
	id          bytea NOT NULL,
	at_ns       bigint NOT NULL,
	until_ns    bigint NOT NULL,
	PRIMARY KEY (recorded_ns, kind, id)
);
CREATE INDEX revocation_log_until ON revocation_log (until_ns);

CREATE TABLE signing_keys (
	kid    bytea PRIMARY KEY,
	record json NOT NULL
);
