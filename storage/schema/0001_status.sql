-- 0001: camera and stream health history, server runs (heartbeats) and clock events.
-- Conventions (docs/design/conventions.md): every row carries node_id; instants are µs UTC;
-- intervals are half-open [start_us, end_us).

-- One row per state change of a stream ("main", "sub") or of a camera as a whole ("camera").
-- A state lasts from its start_us to the start_us of the next row of the same
-- (node_id, camera_id, stream), or, for the last row, to the end of the server run it is in.
CREATE TABLE camera_state_change (
  id INTEGER PRIMARY KEY,
  node_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  stream TEXT NOT NULL CHECK (stream IN ('main', 'sub', 'camera')),
  state TEXT NOT NULL CHECK (state IN ('connecting', 'online', 'offline', 'unauthorized',
                                       'not_found', 'error', 'disabled')),
  start_us INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX camera_state_change_by_camera ON camera_state_change (node_id, camera_id, stream, start_us);

-- One row per server run: [start_us, last_heartbeat_us) was monitored. Time between runs is
-- "not monitored", never "offline".
CREATE TABLE server_run (
  run_id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL,
  start_us INTEGER NOT NULL,
  last_heartbeat_us INTEGER NOT NULL,
  clean_stop INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX server_run_by_start ON server_run (node_id, start_us);

CREATE TABLE clock_event (
  id INTEGER PRIMARY KEY,
  node_id TEXT NOT NULL,
  at_us INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('ntp_synchronised', 'ntp_unsynchronised', 'jump')),
  delta_us INTEGER NOT NULL DEFAULT 0,
  detail TEXT NOT NULL DEFAULT ''
);
