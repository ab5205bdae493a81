-- Loads, check-ins, quarantined rows and per-user totals.

CREATE TABLE loads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    sha256 text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    rows_read integer NOT NULL,
    rows_loaded integer NOT NULL,
    rows_quarantined integer NOT NULL,
    rows_inserted integer NOT NULL,
    report jsonb NOT NULL,
    CHECK (rows_read = rows_loaded + rows_quarantined)
);

CREATE INDEX loads_sha256 ON loads (sha256);

CREATE TABLE checkins (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Identity of the row across loads: cleaned content plus its position
    -- among identical rows, so the same row loaded twice is stored once.
    row_key bytea NOT NULL UNIQUE,
    user_name text NOT NULL,
    checkin_at timestamptz NOT NULL,
    hours numeric NOT NULL CHECK (hours > 0 AND hours <= 24),
    project text NOT NULL,
    flags text[] NOT NULL DEFAULT '{}',
    fixes text[] NOT NULL DEFAULT '{}',
    stamp_format text NOT NULL,
    minute_precision boolean NOT NULL DEFAULT false,
    source_line integer NOT NULL,
    load_id bigint NOT NULL REFERENCES loads (id),
    -- Set when a snapshot load no longer contains the row. Retired rows are
    -- kept for audit, and every query of the API skips them.
    retired_by bigint REFERENCES loads (id)
);

CREATE INDEX checkins_user_time ON checkins (user_name, checkin_at, id)
    WHERE retired_by IS NULL;

CREATE TABLE quarantined_rows (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    load_id bigint NOT NULL REFERENCES loads (id),
    line integer NOT NULL,
    raw_text text NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL
);

CREATE INDEX quarantined_rows_load ON quarantined_rows (load_id, line);

-- Current rows only, kept up to date by every load, so that listing users
-- reads one small table.
CREATE TABLE user_totals (
    user_name text PRIMARY KEY,
    checkins bigint NOT NULL,
    hours numeric NOT NULL,
    first_checkin_at timestamptz NOT NULL,
    last_checkin_at timestamptz NOT NULL
);
