-- Database roles for the HTTP API and the loader, and per-user, per-project
-- totals that the API reads to list projects.

-- Roles belong to the whole server, not to one database, so they may exist
-- already. Databases on one server can run this migration at the same time,
-- so a role created meanwhile by another session is tolerated too.
DO $$
BEGIN
    CREATE ROLE checkins_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    CREATE ROLE checkins_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The account that runs migrations connects as itself and switches with SET
-- ROLE, which needs membership. A superuser has it anyway; a role with
-- CREATEROLE gets only ADMIN OPTION on the roles it creates.
DO $$
BEGIN
    EXECUTE format(
        'GRANT checkins_reader, checkins_writer TO %I', current_user
    );
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO checkins_reader', current_database()
    );
    EXECUTE format(
        'GRANT CONNECT, TEMPORARY ON DATABASE %I TO checkins_writer',
        current_database()
    );
    EXECUTE format(
        'GRANT USAGE ON SCHEMA %I TO checkins_reader, checkins_writer',
        current_schema()
    );
END
$$;

-- Current rows only, one row per user and project. Per-project totals cannot
-- be refreshed user by user, because a project's number of users needs every
-- user's rows, but these rows can, and a project's totals are their sums.
CREATE TABLE user_project_totals (
    user_name text NOT NULL,
    project text NOT NULL,
    checkins bigint NOT NULL,
    hours numeric NOT NULL,
    PRIMARY KEY (user_name, project)
);

CREATE INDEX user_project_totals_project ON user_project_totals (project);

INSERT INTO user_project_totals (user_name, project, checkins, hours)
SELECT user_name, project, count(*), sum(hours)
FROM checkins
WHERE retired_by IS NULL
GROUP BY user_name, project;

-- Recompute the rows of `users` from their current check-ins, which an index
-- of checkins that starts with user_name finds.
CREATE FUNCTION refresh_user_project_totals(users text[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM user_project_totals WHERE user_name = ANY (users);
    INSERT INTO user_project_totals (user_name, project, checkins, hours)
    SELECT user_name, project, count(*), sum(hours)
    FROM checkins
    WHERE user_name = ANY (users) AND retired_by IS NULL
    GROUP BY user_name, project;
$$;

-- Statement-level triggers keep the totals current whatever writes the rows:
-- a load's INSERT, a snapshot load's UPDATE of retired_by, or a DELETE. Each
-- statement refreshes the users it touched once.
CREATE FUNCTION refresh_user_project_totals_of_changed_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_user_project_totals(
        ARRAY(SELECT DISTINCT user_name FROM changed_rows)
    );
    RETURN NULL;
END
$$;

CREATE FUNCTION refresh_user_project_totals_of_updated_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_user_project_totals(
        ARRAY(
            SELECT user_name FROM old_rows
            UNION
            SELECT user_name FROM new_rows
        )
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER checkins_insert_refreshes_user_project_totals
AFTER INSERT ON checkins
REFERENCING NEW TABLE AS changed_rows
FOR EACH STATEMENT EXECUTE FUNCTION refresh_user_project_totals_of_changed_rows();

CREATE TRIGGER checkins_delete_refreshes_user_project_totals
AFTER DELETE ON checkins
REFERENCING OLD TABLE AS changed_rows
FOR EACH STATEMENT EXECUTE FUNCTION refresh_user_project_totals_of_changed_rows();

CREATE TRIGGER checkins_update_refreshes_user_project_totals
AFTER UPDATE ON checkins
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION refresh_user_project_totals_of_updated_rows();

-- The API reads current rows and the history of loads, never quarantined raw
-- text. It connects with default_transaction_read_only on as well.
GRANT SELECT ON loads, checkins, user_totals, user_project_totals
    TO checkins_reader;

-- What a load does after the migrations: stage rows in a temporary table,
-- insert loads, check-ins and quarantined rows, refresh the totals, and
-- update its own load row and retired rows. It never deletes check-ins.
GRANT SELECT ON schema_migrations TO checkins_writer;
GRANT SELECT, INSERT, UPDATE ON loads, checkins TO checkins_writer;
GRANT SELECT, INSERT ON quarantined_rows TO checkins_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON user_totals, user_project_totals
    TO checkins_writer;
