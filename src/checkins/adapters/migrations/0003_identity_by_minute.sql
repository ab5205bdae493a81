-- A row's identity takes the minute of its stamp instead of the stamp as the
-- file wrote it. Exports write the same instant to the second in one row and
-- to the minute in another (US and Russian forms), and a later export may
-- write a row in another form, which would then have been stored again.
--
-- occurrence now counts the rows before this one in its file with the same
-- user, hours, project and minute. Stored rows are numbered again, current
-- rows first and then in the order of their old identity. A later file's
-- rows then match the current rows, and a retired row comes back only when
-- a file has more rows of its minute, hours and project than are current.
ALTER TABLE checkins RENAME COLUMN written_at TO checkin_minute;

DROP INDEX checkins_identity;

UPDATE checkins c
SET checkin_minute = numbered.minute, occurrence = numbered.occurrence
FROM (
    SELECT id, minute,
        row_number() OVER (
            PARTITION BY user_name, minute, project, hours
            ORDER BY retired_by IS NOT NULL, checkin_minute, occurrence, id
        ) - 1 AS occurrence
    FROM (
        SELECT id, user_name, project, hours, checkin_minute, occurrence,
            retired_by,
            date_trunc('minute', checkin_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                AS minute
        FROM checkins
    ) AS rows
) AS numbered
WHERE c.id = numbered.id
    AND (c.checkin_minute, c.occurrence)
        IS DISTINCT FROM (numbered.minute, numbered.occurrence);

CREATE UNIQUE INDEX checkins_identity
    ON checkins (user_name, checkin_minute, project, hours, occurrence);
