-- 0005: gaps, daily rollups, evidence holds, exports and the audit log.

-- A hole in a camera stream's recording: [start_us, end_us) between the end of one segment and
-- the start of the next (a reconnect, a stall, the server down). Kept as long as the segments
-- around it.
CREATE TABLE gap (
  id INTEGER PRIMARY KEY,
  node_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  start_us INTEGER NOT NULL,
  end_us INTEGER NOT NULL,
  reason TEXT NOT NULL            -- stream_break: during a run; server_down: across a restart
);
CREATE INDEX gap_by_camera_time ON gap (node_id, camera_id, stream, start_us);

-- Per camera stream and local day (server.time_zone): what was recorded. Retention never
-- deletes these, so reports over years need no segment rows.
CREATE TABLE rollup_day (
  node_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  day TEXT NOT NULL,              -- YYYY-MM-DD, local
  recorded_us INTEGER NOT NULL DEFAULT 0,
  gap_us INTEGER NOT NULL DEFAULT 0,
  gaps INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  segments INTEGER NOT NULL DEFAULT 0,
  deleted_bytes INTEGER NOT NULL DEFAULT 0,   -- removed by retention since
  PRIMARY KEY (node_id, camera_id, stream, day)
);

-- Evidence holds: footage of these cameras in [start_us, end_us) is never deleted by retention
-- or disk pressure while the hold lasts (expires_us NULL: until released).
CREATE TABLE hold (
  id TEXT PRIMARY KEY,            -- ULID
  node_id TEXT NOT NULL,
  cameras TEXT NOT NULL,          -- JSON array of camera ids
  start_us INTEGER NOT NULL,
  end_us INTEGER NOT NULL,
  reason TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  expires_us INTEGER,
  released_us INTEGER,
  export_id TEXT
);
CREATE TABLE hold_camera (         -- hold × camera, for the retention query
  hold_id TEXT NOT NULL REFERENCES hold (id),
  camera_id TEXT NOT NULL,
  PRIMARY KEY (hold_id, camera_id)
);

-- Export jobs (the report issue counts these as extractions).
CREATE TABLE export_job (
  id TEXT PRIMARY KEY,            -- ULID
  node_id TEXT NOT NULL,
  cameras TEXT NOT NULL,          -- JSON array
  start_us INTEGER NOT NULL,
  end_us INTEGER NOT NULL,
  reason TEXT NOT NULL,
  requesting_unit TEXT NOT NULL DEFAULT '',
  officer TEXT NOT NULL DEFAULT '',
  case_id TEXT,
  created_by TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
  progress REAL NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  out_dir TEXT NOT NULL DEFAULT '',
  manifest_sha256 TEXT NOT NULL DEFAULT '',
  bytes INTEGER NOT NULL DEFAULT 0,
  finished_us INTEGER
);
CREATE INDEX export_by_time ON export_job (node_id, created_us);

-- Append-only audit log, hash-chained: hash = SHA-256(prev_hash || the row's canonical text), so
-- a deleted or edited row breaks the chain from there on.
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  node_id TEXT NOT NULL,
  at_us INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,           -- export, hold, hold_release, clip_view, backup, restore, ...
  target TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT '{}',  -- JSON
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
