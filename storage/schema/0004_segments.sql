-- 0004: recorded segments (stream-copied fragmented MP4), one row per file. A row is written
-- when its segment opens (state 'open') and completed when it closes, so a crash leaves a row
-- that reconciliation can finish from the file.
CREATE TABLE segment (
  id INTEGER PRIMARY KEY,
  node_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  stream TEXT NOT NULL CHECK (stream IN ('main', 'sub')),
  path TEXT NOT NULL UNIQUE,
  codec TEXT NOT NULL,
  start_us INTEGER NOT NULL,
  end_us INTEGER NOT NULL,                 -- [start_us, end_us); = start_us while open
  bytes INTEGER NOT NULL DEFAULT 0,
  frames INTEGER NOT NULL DEFAULT 0,
  keyframes INTEGER NOT NULL DEFAULT 0,
  -- open: being written; complete: closed cleanly; recovered: finished from the file after a
  -- crash (up to its last complete fragment); unreadable: nothing in it could be read
  state TEXT NOT NULL DEFAULT 'open'
    CHECK (state IN ('open', 'complete', 'recovered', 'unreadable'))
);
CREATE INDEX segment_by_camera_time ON segment (node_id, camera_id, stream, start_us);
