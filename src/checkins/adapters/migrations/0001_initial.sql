-- Loads, check-ins, quarantined rows and per-user totals.

CREATE TABLE loads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    sha256 text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('append', 'snapshot')),
    started_at timestamptz NOT NULL,
    -- The counts and the report are written when the load finishes, in the
    -- same transaction as its rows.
    finished_at timestamptz,
    rows_read integer NOT NULL DEFAULT 0,
    rows_loaded integer NOT NULL DEFAULT 0,
    rows_quarantined integer NOT NULL DEFAULT 0,
    rows_inserted integer NOT NULL DEFAULT 0,
    rows_retired integer NOT NULL DEFAULT 0,
    report jsonb NOT NULL DEFAULT '{}',
    CHECK (rows_read = rows_loaded + rows_quarantined)
);

CREATE INDEX loads_sha256 ON loads (sha256);

CREATE TABLE checkins (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name text NOT NULL,
    checkin_at timestamptz NOT NULL,
    hours numeric NOT NULL CHECK (hours > 0 AND hours <= 24),
    project text NOT NULL,
    -- The stamp as the file wrote it. A stamp written to the minute may be
    -- recovered into checkin_at, but the identity keeps the written one.
    written_at timestamptz NOT NULL,
    -- Rows before this one in its file with the same user, written_at, hours
    -- and project. With those four it is the row's identity across loads.
    occurrence integer NOT NULL CHECK (occurrence >= 0),
    flags text[] NOT NULL DEFAULT '{}',
    fixes text[] NOT NULL DEFAULT '{}',
    stamp_format text NOT NULL,
    minute_precision boolean NOT NULL DEFAULT false,
    source_line integer NOT NULL,
    -- The load that stored the row, and the snapshot load that retired it
    -- because its file no longer contained the row. Retired rows are kept for
    -- audit, and every query of the API skips them. Both are ids of loads,
    -- without a foreign key: only loads write them, in the transaction that
    -- creates the load, and a per-row key check would slow bulk loads.
    load_id bigint NOT NULL,
    retired_by bigint
);

CREATE UNIQUE INDEX checkins_identity
    ON checkins (user_name, written_at, project, hours, occurrence);

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
