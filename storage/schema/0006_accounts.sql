-- 0006: accounts. Passwords are Argon2id strings (libsodium crypto_pwhash_str); sessions and API
-- tokens are stored as SHA-256 of the token, so a copied database opens no session.
CREATE TABLE user (
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
  created_us INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE session (
  token_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES user (id),
  csrf TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT '',
  created_us INTEGER NOT NULL,
  expires_us INTEGER NOT NULL
);
CREATE TABLE api_token (
  token_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES user (id),
  label TEXT NOT NULL DEFAULT '',
  created_us INTEGER NOT NULL,
  revoked_us INTEGER
);
