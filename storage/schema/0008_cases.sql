-- 0008: cases ("vụ việc") that police worked on with the footage, and their links to events and
-- exports. The operation report counts them by category and by whether the footage helped.
CREATE TABLE case_file (
  id TEXT PRIMARY KEY,               -- ULID
  node_id TEXT NOT NULL,
  commune TEXT NOT NULL,             -- the commune's code when the case was opened
  category TEXT NOT NULL CHECK (category IN ('theft', 'assault', 'public_disorder',
                                             'traffic_accident', 'environment', 'drugs', 'other')),
  title TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  requesting_unit TEXT NOT NULL DEFAULT '',
  officer TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'clarified', 'closed')),
  footage_helped INTEGER NOT NULL DEFAULT 0 CHECK (footage_helped IN (0, 1)),
  occurred_us INTEGER NOT NULL,      -- when it happened: the report's period counts by this
  created_by TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL
);
CREATE INDEX case_by_commune_time ON case_file (node_id, commune, occurred_us);

CREATE TABLE case_link (
  case_id TEXT NOT NULL REFERENCES case_file (id),
  kind TEXT NOT NULL CHECK (kind IN ('event', 'export')),
  target_id TEXT NOT NULL,
  linked_by TEXT NOT NULL,
  linked_us INTEGER NOT NULL,
  PRIMARY KEY (case_id, kind, target_id)
);
CREATE INDEX case_link_by_target ON case_link (kind, target_id);
