-- smartauth schema, version 2: what the store knows about itself.
--
-- serving_since is set (once) when a smart_auth instance first opens the
-- database to serve from it; `caddy smart-auth migrate` opens it without
-- setting it, and refuses to copy into a database that has it unless
-- forced: records deleted there since (a signed-out session, a used
-- launch, a removed client) would come back.

CREATE TABLE store_meta (
	name  text PRIMARY KEY,
	value text NOT NULL
);
