/*
 * The PostgreSQL schema (school_policy.*), one SQL text per migration.
 *
 * Migration n brings the schema from version n-1 to n. Never edit one that
 * has shipped: add the next (MIGRATION_4_SQL, ...), list it in MIGRATIONS
 * and raise SCHEMA_VERSION. docs/schema.md describes the result.
 */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "pg/pg_conn.h"
#include "pg/pg_migrations.h"

#define SCHEMA_VERSION 6

/* 1: roster, change log with NOTIFY, audit */
static const char MIGRATION_1_SQL[] =
    "CREATE TABLE school_policy.roster ("
    "  user_id text NOT NULL,"
    "  school text NOT NULL,"
    "  role text NOT NULL CHECK (role IN ('student', 'teacher', 'admin')),"
    "  PRIMARY KEY (user_id, school));"
    "CREATE TABLE school_policy.roster_changes ("
    "  version bigserial PRIMARY KEY,"
    "  user_id text," /* NULL: everything changed (TRUNCATE) */
    "  changed_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX roster_changes_changed_at ON school_policy.roster_changes (changed_at);"
    "CREATE FUNCTION school_policy.roster_changed() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    /* Serialise writers until commit, so that versions commit in order and
     * 'version > last seen' never skips a change. */
    "  PERFORM pg_advisory_xact_lock(7240571810012712);"
    "  IF TG_OP = 'TRUNCATE' THEN"
    "   INSERT INTO school_policy.roster_changes (user_id) VALUES (NULL);"
    "  ELSE"
    "   IF TG_OP IN ('UPDATE', 'DELETE') THEN"
    "    INSERT INTO school_policy.roster_changes (user_id) VALUES (OLD.user_id);"
    "   END IF;"
    "   IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    "    INSERT INTO school_policy.roster_changes (user_id) VALUES (NEW.user_id);"
    "   END IF;"
    "  END IF;"
    /* One payload for all: PostgreSQL folds a transaction's identical
     * notifications into one. */
    "  PERFORM pg_notify('school_policy_roster', '');"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE TRIGGER roster_changed AFTER INSERT OR UPDATE OR DELETE ON school_policy.roster"
    "  FOR EACH ROW EXECUTE FUNCTION school_policy.roster_changed();"
    "CREATE TRIGGER roster_truncated AFTER TRUNCATE ON school_policy.roster"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.roster_changed();"
    "CREATE TABLE school_policy.audit ("
    "  id bigserial PRIMARY KEY,"
    "  ts timestamptz NOT NULL,"
    "  rule text NOT NULL,"
    "  callback text NOT NULL,"
    "  enforced boolean NOT NULL,"
    "  actor text,"
    "  target text,"
    "  room_id text,"
    "  event_type text,"
    "  school text,"
    "  worker text NOT NULL,"
    "  origin text NOT NULL,"
    "  origin_seq bigint NOT NULL,"
    "  UNIQUE (origin, origin_seq));"
    "CREATE INDEX audit_ts ON school_policy.audit (ts);"
    "CREATE INDEX audit_actor ON school_policy.audit (actor, id);"
    "CREATE INDEX audit_target ON school_policy.audit (target, id) WHERE target IS NOT NULL;"
    "CREATE INDEX audit_school ON school_policy.audit (school, id);";

/* 2: the reconcile state: marks (kept by a trigger on the roster),
     * special rooms, applied school config */
static const char MIGRATION_2_SQL[] =
    "CREATE SEQUENCE school_policy.reconcile_generation;"
    "CREATE TABLE school_policy.reconcile_marks ("
    "  school text NOT NULL,"
    "  user_id text NOT NULL," /* '': the school itself */
    "  generation bigint NOT NULL,"
    "  marked_at bigint NOT NULL," /* ms since the epoch */
    "  attempts integer NOT NULL DEFAULT 0,"
    "  next_attempt_at bigint NOT NULL DEFAULT 0," /* ms; 0: due now */
    "  last_error text,"
    "  failed_at bigint,"
    "  PRIMARY KEY (school, user_id));"
    "CREATE INDEX reconcile_marks_due ON school_policy.reconcile_marks"
    "  (next_attempt_at, marked_at, generation);"
    "CREATE TABLE school_policy.special_rooms ("
    "  school text NOT NULL,"
    "  kind text NOT NULL CHECK (kind IN ('teachers', 'announcement')),"
    "  room_id text NOT NULL,"
    "  PRIMARY KEY (school, kind));"
    "CREATE TABLE school_policy.school_state ("
    "  school text PRIMARY KEY,"
    "  applied text NOT NULL);"
    /* A (re)mark: a new generation, due now; last_error stays until done. */
    "CREATE FUNCTION school_policy.reconcile_mark(p_school text, p_user_id text)"
    " RETURNS bigint LANGUAGE sql AS $f$"
    " INSERT INTO school_policy.reconcile_marks AS m"
    "  (school, user_id, generation, marked_at, attempts, next_attempt_at)"
    " VALUES (p_school, p_user_id, nextval('school_policy.reconcile_generation'),"
    "  (extract(epoch FROM clock_timestamp()) * 1000)::bigint, 0, 0)"
    " ON CONFLICT (school, user_id) DO UPDATE SET generation = EXCLUDED.generation,"
    "  marked_at = EXCLUDED.marked_at, attempts = 0, next_attempt_at = 0"
    " RETURNING generation $f$;"
    "CREATE FUNCTION school_policy.roster_reconcile_mark() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  IF TG_OP = 'TRUNCATE' THEN"
    "   PERFORM school_policy.reconcile_mark(s.school, '') FROM"
    "    (SELECT school FROM school_policy.special_rooms"
    "     UNION SELECT school FROM school_policy.school_state) s;"
    "  ELSE"
    "   IF TG_OP IN ('UPDATE', 'DELETE') THEN"
    "    PERFORM school_policy.reconcile_mark(OLD.school, OLD.user_id);"
    "   END IF;"
    "   IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    "    PERFORM school_policy.reconcile_mark(NEW.school, NEW.user_id);"
    "   END IF;"
    "  END IF;"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE TRIGGER roster_reconcile_mark AFTER INSERT OR UPDATE OR DELETE"
    "  ON school_policy.roster"
    "  FOR EACH ROW EXECUTE FUNCTION school_policy.roster_reconcile_mark();"
    "CREATE TRIGGER roster_reconcile_truncated AFTER TRUNCATE ON school_policy.roster"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.roster_reconcile_mark();";

/* 3: the audit page: the read log, and indexes for a school's pages by
     * rule and for the chart's counts per rule over time (index-only) */
static const char MIGRATION_3_SQL[] =
    "CREATE TABLE school_policy.audit_reads ("
    "  id bigserial PRIMARY KEY,"
    "  ts timestamptz NOT NULL,"
    "  reader text NOT NULL,"
    "  access text NOT NULL,"
    "  op text NOT NULL,"
    "  query jsonb NOT NULL,"
    "  schools jsonb," /* NULL: every school */
    "  worker text NOT NULL);"
    "CREATE INDEX audit_reads_ts ON school_policy.audit_reads (ts);"
    "CREATE INDEX audit_reads_schools ON school_policy.audit_reads USING gin (schools);"
    "CREATE INDEX audit_school_ts ON school_policy.audit (school, ts) INCLUDE (rule);"
    "CREATE INDEX audit_school_rule ON school_policy.audit (school, rule, id);"
    "CREATE INDEX audit_rule ON school_policy.audit (rule, id);";

/* 4: summaries of a flood (count, last_ts) and the module's own actions
     * (kind, action, group_id, reason). Nullable columns with no default
     * and NOT VALID checks: no table rewrite, no scan of the old rows
     * (all single denials: NULL kind is a denial, NULL count is 1). The
     * chart's index-only scan carries count now; actions are rare among
     * denials, so a page of actions has an index of its own. */
static const char MIGRATION_4_SQL[] =
    "ALTER TABLE school_policy.audit"
    "  ALTER COLUMN rule DROP NOT NULL,"
    "  ALTER COLUMN callback DROP NOT NULL,"
    "  ALTER COLUMN enforced DROP NOT NULL,"
    "  ADD COLUMN kind text,"
    "  ADD COLUMN count bigint,"
    "  ADD COLUMN last_ts timestamptz,"
    "  ADD COLUMN action text,"
    "  ADD COLUMN group_id text,"
    "  ADD COLUMN reason text,"
    "  ADD CONSTRAINT audit_kind CHECK (kind IN ('denial', 'action')) NOT VALID,"
    "  ADD CONSTRAINT audit_count CHECK (count >= 1) NOT VALID,"
    "  ADD CONSTRAINT audit_kind_fields CHECK (CASE WHEN kind = 'action'"
    "   THEN action IS NOT NULL"
    "   ELSE rule IS NOT NULL AND callback IS NOT NULL AND enforced IS NOT NULL END) NOT VALID;"
    "CREATE INDEX audit_school_ts_count ON school_policy.audit (school, ts) INCLUDE (rule, count);"
    "DROP INDEX school_policy.audit_school_ts;"
    "CREATE INDEX audit_actions ON school_policy.audit (id) WHERE kind = 'action';";

/* 5: the chart's counts: denials per school (and '' for every school), per
 * rule and per UTC hour and day, kept by statement triggers in the
 * transaction of each INSERT, DELETE or UPDATE of school_policy.audit (the
 * records really inserted: a replayed batch's duplicates are not in the
 * transition table), and filled from the records there are. */
static const char MIGRATION_5_SQL[] =
    "CREATE TABLE school_policy.audit_counts ("
    "  school text NOT NULL," /* '': every school, records of no school included */
    "  grain bigint NOT NULL," /* ms: 3600000 (an hour) or 86400000 (a day) */
    "  start_ms bigint NOT NULL," /* the unit's start, ms since the epoch */
    "  rule text NOT NULL,"
    "  n bigint NOT NULL," /* denials: a flood's summary counts its count */
    "  PRIMARY KEY (school, grain, start_ms, rule));"
    /* The counts one record adds to: its hour and its day, in its school
     * and in ''. An action (no rule) adds nothing. */
    "CREATE FUNCTION school_policy.audit_count_keys(p_ts timestamptz, p_school text,"
    "  p_rule text, p_count bigint)"
    " RETURNS TABLE (school text, grain bigint, start_ms bigint, rule text, n bigint)"
    " LANGUAGE sql STABLE AS $f$"
    " SELECT s.school, g.grain, m.ms - ((m.ms % g.grain) + g.grain) % g.grain, p_rule,"
    "  coalesce(p_count, 1)"
    " FROM (SELECT (extract(epoch FROM p_ts) * 1000)::bigint AS ms) m,"
    "  (VALUES (3600000::bigint), (86400000::bigint)) g(grain),"
    "  (VALUES (''::text), (nullif(p_school, ''))) s(school)"
    " WHERE p_rule IS NOT NULL AND s.school IS NOT NULL $f$;"
    "CREATE FUNCTION school_policy.audit_counted() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  IF TG_OP = 'TRUNCATE' THEN"
    "   TRUNCATE school_policy.audit_counts;"
    "   RETURN NULL;"
    "  END IF;"
    "  IF TG_OP IN ('DELETE', 'UPDATE') THEN"
    "   UPDATE school_policy.audit_counts c SET n = c.n - d.n FROM"
    "    (SELECT k.school, k.grain, k.start_ms, k.rule, sum(k.n) AS n FROM old_rows r,"
    "     LATERAL school_policy.audit_count_keys(r.ts, r.school, r.rule, r.count) k"
    "     GROUP BY 1, 2, 3, 4) d"
    "   WHERE c.school = d.school AND c.grain = d.grain AND c.start_ms = d.start_ms"
    "    AND c.rule = d.rule;"
    "  END IF;"
    "  IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    /* In key order: two processes' batches lock shared rows in the same
     * order, so they wait for each other instead of deadlocking. */
    "   INSERT INTO school_policy.audit_counts AS c (school, grain, start_ms, rule, n)"
    "   SELECT k.school, k.grain, k.start_ms, k.rule, sum(k.n) FROM new_rows r,"
    "    LATERAL school_policy.audit_count_keys(r.ts, r.school, r.rule, r.count) k"
    "   GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    "   ON CONFLICT (school, grain, start_ms, rule) DO UPDATE SET n = c.n + EXCLUDED.n;"
    "  END IF;"
    "  IF TG_OP IN ('DELETE', 'UPDATE') THEN"
    "   DELETE FROM school_policy.audit_counts c USING"
    "    (SELECT DISTINCT k.school, k.grain, k.start_ms, k.rule FROM old_rows r,"
    "     LATERAL school_policy.audit_count_keys(r.ts, r.school, r.rule, r.count) k) d"
    "   WHERE c.school = d.school AND c.grain = d.grain AND c.start_ms = d.start_ms"
    "    AND c.rule = d.rule AND c.n <= 0;"
    "  END IF;"
    "  RETURN NULL;"
    " END $f$;"
    /* The triggers take their lock on school_policy.audit before the
     * counts are filled: no record comes in between. */
    "CREATE TRIGGER audit_counted_insert AFTER INSERT ON school_policy.audit"
    "  REFERENCING NEW TABLE AS new_rows"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.audit_counted();"
    "CREATE TRIGGER audit_counted_delete AFTER DELETE ON school_policy.audit"
    "  REFERENCING OLD TABLE AS old_rows"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.audit_counted();"
    "CREATE TRIGGER audit_counted_update AFTER UPDATE ON school_policy.audit"
    "  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.audit_counted();"
    "CREATE TRIGGER audit_counted_truncate AFTER TRUNCATE ON school_policy.audit"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.audit_counted();"
    "INSERT INTO school_policy.audit_counts (school, grain, start_ms, rule, n)"
    " SELECT k.school, k.grain, k.start_ms, k.rule, sum(k.n) FROM school_policy.audit r,"
    "  LATERAL school_policy.audit_count_keys(r.ts, r.school, r.rule, r.count) k"
    " GROUP BY 1, 2, 3, 4;";

/* 6: groups (courses, teams, classes), one row each with its members in two
 * arrays (a load reads 150,000 rows, not 6,000,000), their change log with
 * NOTIFY, as the roster's, and their reconcile marks; their rooms among the
 * special rooms. Statement triggers:
 * a batch of groups is one change-log INSERT and one NOTIFY; a statement
 * that changes no row (a repeated import) marks and notifies nobody. */
static const char MIGRATION_6_SQL[] =
    "CREATE TABLE school_policy.groups ("
    "  group_id text PRIMARY KEY CHECK (octet_length(group_id) BETWEEN 1 AND 255),"
    "  school text NOT NULL,"
    "  kind text NOT NULL CHECK (kind IN ('course', 'team', 'class')),"
    "  name text NOT NULL CHECK (name <> ''),"
    "  topic text,"
    "  two_way boolean NOT NULL DEFAULT false,"
    "  closed boolean NOT NULL DEFAULT true,"
    "  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'archived', 'deleted')),"
    "  archive_at_ms bigint CHECK (archive_at_ms > 0)," /* NULL: none */
    "  version bigint CHECK (version >= 0),"            /* NULL: none */
    "  moderators text[] NOT NULL DEFAULT '{}',"
    "  members text[] NOT NULL DEFAULT '{}',"
    "  CONSTRAINT groups_no_null_member CHECK (array_position(moderators, NULL) IS NULL"
    "   AND array_position(members, NULL) IS NULL),"
    "  CONSTRAINT groups_one_role CHECK (NOT (moderators && members)));"
    "CREATE INDEX groups_school ON school_policy.groups (school, group_id);"
    "CREATE TABLE school_policy.group_changes ("
    "  version bigserial PRIMARY KEY,"
    "  group_id text," /* NULL: everything changed (TRUNCATE) */
    "  changed_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX group_changes_changed_at ON school_policy.group_changes (changed_at);"
    "CREATE FUNCTION school_policy.groups_changed() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " DECLARE ids text[]; schools text[];"
    " BEGIN"
    "  IF TG_OP = 'TRUNCATE' THEN"
    "   PERFORM pg_advisory_xact_lock(7240571810012713);"
    "   INSERT INTO school_policy.group_changes (group_id) VALUES (NULL);"
    "   PERFORM pg_notify('school_policy_groups', '');"
    "   RETURN NULL;"
    "  ELSIF TG_OP = 'INSERT' THEN"
    "   SELECT array_agg(group_id), array_agg(school) INTO ids, schools FROM new_rows;"
    "  ELSIF TG_OP = 'DELETE' THEN"
    "   SELECT array_agg(group_id), array_agg(school) INTO ids, schools FROM old_rows;"
    "  ELSE"
    "   SELECT array_agg(group_id), array_agg(school) INTO ids, schools FROM"
    "    (SELECT group_id, school FROM old_rows UNION SELECT group_id, school FROM new_rows) r;"
    "  END IF;"
    "  IF ids IS NULL THEN"
    "   RETURN NULL;" /* no row changed */
    "  END IF;"
    /* Serialise writers until commit, as the roster's trigger does: versions
     * commit in order and 'version > last seen' never skips a change. */
    "  PERFORM pg_advisory_xact_lock(7240571810012713);"
    "  INSERT INTO school_policy.group_changes (group_id)"
    "   SELECT DISTINCT g FROM unnest(ids) g ORDER BY 1;"
    /* The old and the new school of each group, in key order (two
     * processes' batches wait for each other instead of deadlocking). */
    "  PERFORM school_policy.reconcile_mark(c.s, 'group:' || c.g) FROM"
    "   (SELECT DISTINCT s, g FROM unnest(schools, ids) u(s, g) ORDER BY 1, 2) c;"
    "  PERFORM pg_notify('school_policy_groups', '');"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE TRIGGER groups_changed_insert AFTER INSERT ON school_policy.groups"
    "  REFERENCING NEW TABLE AS new_rows"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.groups_changed();"
    "CREATE TRIGGER groups_changed_update AFTER UPDATE ON school_policy.groups"
    "  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.groups_changed();"
    "CREATE TRIGGER groups_changed_delete AFTER DELETE ON school_policy.groups"
    "  REFERENCING OLD TABLE AS old_rows"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.groups_changed();"
    "CREATE TRIGGER groups_truncated AFTER TRUNCATE ON school_policy.groups"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.groups_changed();"
    /* A group's room is recorded beside the special rooms, as kind
     * 'group:' || group_id (reconcile_set_room). */
    "ALTER TABLE school_policy.special_rooms DROP CONSTRAINT special_rooms_kind_check,"
    "  ADD CONSTRAINT special_rooms_kind"
    "  CHECK (kind IN ('teachers', 'announcement') OR kind LIKE 'group:_%');";

static const char *const MIGRATIONS[SCHEMA_VERSION] = {
    MIGRATION_1_SQL,
    MIGRATION_2_SQL,
    MIGRATION_3_SQL,
    MIGRATION_4_SQL,
    MIGRATION_5_SQL,
    MIGRATION_6_SQL,
};

/* Held until commit, so that workers starting together apply each
 * migration once. */
static const char MIGRATION_LOCK_SQL[] = "SELECT pg_advisory_xact_lock(7240571810012711)";

static const char SCHEMA_VERSION_TABLE_SQL[] =
    "CREATE SCHEMA IF NOT EXISTS school_policy;"
    "CREATE TABLE IF NOT EXISTS school_policy.schema_version ("
    " version integer NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

int ssp_pg_migrate(ssp_pg_conn *conn, ssp_error *err)
{
    ssp_pg_rows *rows;
    int version;

    if (ssp_pg_script(conn, "BEGIN", NULL, err) != 0)
        return -1;
    if (ssp_pg_exec(conn, MIGRATION_LOCK_SQL, 0, NULL, true, "migration failed", err) != 0 ||
        ssp_pg_script(conn, SCHEMA_VERSION_TABLE_SQL, NULL, err) != 0)
        goto rollback;
    rows = ssp_pg_query(conn, "SELECT coalesce(max(version), 0) FROM school_policy.schema_version",
                        0, NULL, true, "migration failed", err);
    if (rows == NULL)
        goto rollback;
    version = (int)ssp_pg_int(rows, 0, 0);
    ssp_pg_rows_free(rows);
    if (version > SCHEMA_VERSION) {
        ssp_fail(err, SSP_ERR_STATE,
                 "database: schema school_policy is at version %d, newer than this module "
                 "(%d); upgrade synapse-school-policy",
                 version, SCHEMA_VERSION);
        goto rollback;
    }
    for (int v = version + 1; v <= SCHEMA_VERSION; v++) {
        char insert[96];

        if (ssp_pg_script(conn, MIGRATIONS[v - 1], NULL, err) != 0)
            goto rollback;
        snprintf(insert, sizeof insert, "INSERT INTO school_policy.schema_version (version) "
                                        "VALUES (%d)", v);
        if (ssp_pg_script(conn, insert, NULL, err) != 0)
            goto rollback;
    }
    return ssp_pg_script(conn, "COMMIT", NULL, err);
rollback:
    {
        ssp_error ignored;

        (void)ssp_pg_script(conn, "ROLLBACK", NULL, &ignored);
    }
    return -1;
}
