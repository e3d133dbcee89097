//! Vault stage, bookkeeping: every statement on the `meta` schema lives here (runs, loads,
//! the vault's manifest of files, satellites, file stats, reader state, the recipe).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use duckdb::{params, Connection, OptionalExt};
use serde::{Deserialize, Serialize};

use crate::error::VaultError;
use crate::lake::FileStat;

/// The meta tables. Idempotent; new columns of later versions are added by `ALTER`.
pub const DDL: &str = r#"
CREATE SCHEMA IF NOT EXISTS vault;
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.vault (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta.runs (
    run_id BIGINT NOT NULL, command VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    status VARCHAR, exit_code INTEGER, units_loaded BIGINT, units_skipped BIGINT,
    units_failed BIGINT);
CREATE TABLE IF NOT EXISTS meta.loads (
    run_id BIGINT NOT NULL, source VARCHAR NOT NULL, file_hash VARCHAR, path VARCHAR,
    satellite VARCHAR, rows_read BIGINT, new_keys BIGINT, new_rows BIGINT,
    changed_rows BIGINT, unchanged_rows BIGINT, rejected_rows BIGINT, duplicate_keys BIGINT,
    status VARCHAR NOT NULL, error VARCHAR, loaded_at TIMESTAMPTZ);
ALTER TABLE meta.loads ADD COLUMN IF NOT EXISTS load_ts TIMESTAMPTZ;
ALTER TABLE meta.loads ADD COLUMN IF NOT EXISTS definition VARCHAR;
CREATE TABLE IF NOT EXISTS meta.files (
    file_hash VARCHAR NOT NULL, source VARCHAR NOT NULL, original_path VARCHAR, size BIGINT,
    first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS meta.satellites (
    source VARCHAR NOT NULL, table_name VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
    columns VARCHAR NOT NULL, tags VARCHAR NOT NULL, created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS meta.file_stats (
    source VARCHAR NOT NULL, path VARCHAR NOT NULL, size BIGINT, mtime_ns BIGINT,
    ctime_ns BIGINT, inode UBIGINT, file_hash VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta.state (
    source VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR, updated_at TIMESTAMPTZ);
"#;

/// The `meta.state` key a reader's end state is saved under.
pub const READER_STATE: &str = "reader";

/// What became of one input unit, as `meta.loads.status` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Loaded and committed.
    Loaded,
    /// This source already loaded these bytes.
    Skipped,
    /// `--dry-run`: it would be loaded.
    WouldLoad,
    /// It could not be read or written; nothing of it landed.
    Failed,
    /// Its values or columns broke the source's tag contract; nothing of it landed.
    Rejected,
}

impl UnitStatus {
    /// The word `meta.loads` and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Loaded => "loaded",
            UnitStatus::Skipped => "skipped",
            UnitStatus::WouldLoad => "would_load",
            UnitStatus::Failed => "failed",
            UnitStatus::Rejected => "rejected",
        }
    }
}

/// Counters of one loaded unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadCounts {
    pub rows_read: u64,
    pub new_keys: u64,
    pub new_rows: u64,
    pub changed_rows: u64,
    pub unchanged_rows: u64,
    pub duplicate_keys: u64,
}

/// One input unit as the vault records it.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The run loading it.
    pub run_id: i64,
    /// BLAKE3 of the unit's bytes (its lake name).
    pub file_hash: String,
    /// The original name, as the user knows it (relative to the project when possible).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The `load_ts` of every row it adds: now for a sync, the recorded one for a rebuild.
    pub load_ts: DateTime<Utc>,
    /// The name a satellite it creates takes, when a rebuild knows it.
    pub satellite_name: Option<String>,
    /// The fingerprint of the source's definition it is loaded under
    /// (`Definitions::load_fingerprint`).
    pub definition: String,
}

/// A satellite column as recorded in `meta.satellites.columns`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnRecord {
    /// Source column name.
    pub name: String,
    /// Field type, as written in definitions.
    #[serde(rename = "type")]
    pub ty: String,
    /// Tag field the column carries, if any.
    pub field: Option<String>,
    /// The part it plays when the field is derived from several columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<crate::defs::Part>,
}

/// A row of `meta.satellites`.
#[derive(Debug, Clone)]
pub struct SatelliteRecord {
    pub source: String,
    pub table: String,
    pub columns: Vec<ColumnRecord>,
    pub tags: Vec<String>,
    pub created_at: String,
}

/// A loaded unit as `meta.loads` has it: what the lake manifest must also know.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRecord {
    pub source: String,
    pub file_hash: String,
    pub path: String,
    pub satellite: Option<String>,
    pub load_ts: DateTime<Utc>,
}

/// Create the schemas and meta tables.
pub fn create(conn: &Connection) -> Result<(), VaultError> {
    conn.execute_batch(DDL)
        .map_err(VaultError::db("cannot create the meta tables"))
}

/// The value of `key` in `meta.vault`, if the table and the key exist.
pub fn vault_value(conn: &Connection, key: &str) -> Option<String> {
    conn.query_row("SELECT value FROM meta.vault WHERE key = ?", [key], |r| {
        r.get(0)
    })
    .ok()
}

/// Set `key` in `meta.vault`.
pub fn set_vault_value(conn: &Connection, key: &str, value: &str) -> Result<(), VaultError> {
    conn.execute("DELETE FROM meta.vault WHERE key = ?", [key])
        .and_then(|_| conn.execute("INSERT INTO meta.vault VALUES (?, ?)", [key, value]))
        .map(|_| ())
        .map_err(VaultError::db(format!(
            "cannot record `{key}` in meta.vault"
        )))
}

/// Every (key, value) of `meta.vault`.
pub fn vault_values(conn: &Connection) -> Result<Vec<(String, String)>, VaultError> {
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta.vault")
        .map_err(VaultError::db("cannot read meta.vault"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(VaultError::db("cannot read meta.vault"));
    rows
}

/// All satellites recorded in the vault, oldest first.
pub fn satellites(conn: &Connection) -> Result<Vec<SatelliteRecord>, VaultError> {
    let mut stmt = conn
        .prepare(
            "SELECT source, table_name, columns, tags, strftime(created_at::TIMESTAMP, '%Y-%m-%d %H:%M:%S') \
             FROM meta.satellites ORDER BY created_at, table_name",
        )
        .map_err(VaultError::db("cannot read meta.satellites"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(VaultError::db("cannot read meta.satellites"))?;
    rows.into_iter()
        .map(|(source, table, columns, tags, created_at)| {
            let bad = |e: serde_json::Error| {
                VaultError::Refused(format!("meta.satellites row of `{table}` is damaged: {e}"))
            };
            Ok(SatelliteRecord {
                columns: serde_json::from_str(&columns).map_err(bad)?,
                tags: serde_json::from_str(&tags).map_err(bad)?,
                source,
                table: table.clone(),
                created_at,
            })
        })
        .collect()
}

/// The satellite of `source` whose schema has this fingerprint, if there is one.
pub fn satellite_with(
    conn: &Connection,
    source: &str,
    fingerprint: &str,
) -> Result<Option<String>, VaultError> {
    conn.prepare_cached(
        "SELECT table_name FROM meta.satellites WHERE source = ? AND fingerprint = ?",
    )
    .and_then(|mut s| s.query_row(params![source, fingerprint], |r| r.get(0)))
    .optional()
    .map_err(VaultError::db("cannot read meta.satellites"))
}

/// Record a new satellite.
pub fn record_satellite(
    conn: &Connection,
    source: &str,
    table: &str,
    fingerprint: &str,
    columns: &[ColumnRecord],
    tags: &[String],
    created_at: DateTime<Utc>,
) -> Result<(), VaultError> {
    conn.execute(
        "INSERT INTO meta.satellites VALUES (?, ?, ?, ?, ?, ?::TIMESTAMPTZ)",
        params![
            source,
            table,
            fingerprint,
            serde_json::to_string(columns).expect("columns serialise"),
            serde_json::to_string(tags).expect("tags serialise"),
            created_at.to_rfc3339()
        ],
    )
    .map(|_| ())
    .map_err(VaultError::db("cannot record the new satellite"))
}

/// Note in `meta.files` that `source` loaded the unit's bytes (first and last seen).
pub fn record_file(conn: &Connection, unit: &Unit, source: &str) -> Result<(), VaultError> {
    let ts = unit.load_ts.to_rfc3339();
    let hash = &unit.file_hash;
    // Statements run for every unit are prepared once per run: for small inputs, parsing
    // and planning them costs more than running them.
    let run = |sql: &str, params: &[&dyn duckdb::ToSql]| {
        conn.prepare_cached(sql).and_then(|mut s| s.execute(params))
    };
    run(
        "UPDATE meta.files SET last_seen = ?::TIMESTAMPTZ WHERE file_hash = ? AND source = ?",
        params![ts, hash, source],
    )
    .and_then(|_| {
        run(
            "INSERT INTO meta.files SELECT ?, ?, ?, ?, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ \
             WHERE NOT EXISTS (SELECT 1 FROM meta.files WHERE file_hash = ? AND source = ?)",
            params![
                hash,
                source,
                unit.path,
                unit.size as i64,
                ts,
                ts,
                hash,
                source
            ],
        )
    })
    .map(|_| ())
    .map_err(VaultError::db("cannot write meta.files"))
}

/// Write a `meta.loads` row.
pub fn record_load(
    conn: &Connection,
    unit: &Unit,
    source: &str,
    satellite: Option<&str>,
    counts: &LoadCounts,
    status: UnitStatus,
    error: Option<&str>,
) -> Result<(), VaultError> {
    let rejected = match status {
        UnitStatus::Rejected => counts.rows_read as i64,
        _ => 0,
    };
    let load_ts = (status == UnitStatus::Loaded).then(|| unit.load_ts.to_rfc3339());
    conn.prepare_cached(
        "INSERT INTO meta.loads (run_id, source, file_hash, path, satellite, rows_read, \
         new_keys, new_rows, changed_rows, unchanged_rows, rejected_rows, duplicate_keys, \
         status, error, loaded_at, load_ts, definition) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?::TIMESTAMPTZ, ?)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            unit.run_id,
            source,
            unit.file_hash,
            unit.path,
            satellite,
            counts.rows_read as i64,
            counts.new_keys as i64,
            counts.new_rows as i64,
            counts.changed_rows as i64,
            counts.unchanged_rows as i64,
            rejected,
            counts.duplicate_keys as i64,
            status.as_str(),
            error,
            load_ts,
            unit.definition,
        ])
    })
    .map_err(VaultError::db("cannot record the load"))?;
    Ok(())
}

/// The `meta.vault` key of the last run whose loads the lake's manifest is known to list.
pub const LISTED_RUN: &str = "manifest_listed_run";

/// The last run whose loads the lake's manifest is known to list (0: none known).
pub fn listed_run(conn: &Connection) -> i64 {
    vault_value(conn, LISTED_RUN)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every unit loaded by a run after `after_run`, in the order it was loaded: what the
/// lake manifest must list.
/// Loads recorded before `meta.loads` kept `load_ts` take it from the rows they added;
/// one that added no rows has no `load_ts` that anything depends on, and takes the time
/// it was recorded.
pub fn loaded_units(conn: &Connection, after_run: i64) -> Result<Vec<LoadRecord>, VaultError> {
    const TS: &str = "'%Y-%m-%dT%H:%M:%S.%fZ'";
    // A vault no sync of this version has opened yet lacks the column; reading it must
    // not change it (a failed rebuild leaves the vault as it was).
    // (Preparing a statement that names it is far cheaper than information_schema.)
    let has_load_ts = conn
        .prepare("SELECT load_ts FROM meta.loads LIMIT 0")
        .is_ok();
    let load_ts = if has_load_ts {
        "load_ts"
    } else {
        "NULL::TIMESTAMPTZ"
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT source, file_hash, path, satellite, run_id, {load_ts} IS NULL, \
                    strftime(coalesce({load_ts}, loaded_at)::TIMESTAMP, {TS}) \
             FROM meta.loads WHERE status = 'loaded' AND run_id > ? ORDER BY loaded_at, run_id"
        ))
        .map_err(VaultError::db("cannot read meta.loads"))?;
    let rows = stmt
        .query_map([after_run], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(VaultError::db("cannot read meta.loads"))?;
    rows.into_iter()
        .map(
            |(source, file_hash, path, satellite, run_id, unrecorded, ts)| {
                let from_rows = match (&satellite, unrecorded) {
                    (Some(sat), true) => conn
                        .query_row(
                            &format!(
                                "SELECT strftime(min(load_ts)::TIMESTAMP, {TS}) FROM vault.{} \
                             WHERE file_hash = ? AND run_id = ?",
                                crate::db::ident(sat)
                            ),
                            params![file_hash, run_id],
                            |r| r.get::<_, Option<String>>(0),
                        )
                        .map_err(VaultError::db(format!("cannot read `{sat}`")))?,
                    _ => None,
                };
                let ts = from_rows.unwrap_or(ts);
                let load_ts = DateTime::parse_from_rfc3339(&ts)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        VaultError::Refused(format!("meta.loads: bad load_ts {ts}: {e}"))
                    })?;
                Ok(LoadRecord {
                    source,
                    file_hash,
                    path: path.unwrap_or_default(),
                    satellite,
                    load_ts,
                })
            },
        )
        .collect()
}

/// The units a source has loaded: under its current definition, and under any.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Hashes loaded under the definition given.
    pub current: HashSet<String>,
    /// Hashes loaded under any definition.
    pub any: HashSet<String>,
}

/// The hashes of every unit this source has loaded, split by whether they were loaded
/// under `definition`. Loads from before definitions were recorded count as loaded under
/// it, so an upgrade reloads nothing (`adopt_definition` then records it with them).
pub fn loaded_files(
    conn: &Connection,
    source: &str,
    definition: &str,
) -> Result<Loaded, VaultError> {
    let mut stmt = conn
        .prepare(
            "SELECT file_hash, bool_or(coalesce(definition = ?, true)) FROM meta.loads \
             WHERE source = ? AND status = 'loaded' GROUP BY file_hash",
        )
        .map_err(VaultError::db("cannot read meta.loads"))?;
    let rows: Vec<(String, bool)> = stmt
        .query_map(params![definition, source], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(VaultError::db("cannot read meta.loads"))?;
    let mut loaded = Loaded::default();
    for (hash, current) in rows {
        if current {
            loaded.current.insert(hash.clone());
        }
        loaded.any.insert(hash);
    }
    Ok(loaded)
}

/// The hash of every unit any source loaded (for `lake gc`: what it must keep).
pub fn loaded_hashes(conn: &Connection) -> Result<Vec<String>, VaultError> {
    let mut stmt = conn
        .prepare("SELECT DISTINCT file_hash FROM meta.loads WHERE status = 'loaded'")
        .map_err(VaultError::db("cannot read meta.loads"))?;
    let hashes: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(VaultError::db("cannot read meta.loads"))?;
    Ok(hashes)
}

/// The order in which `source` first loaded each of its units (0 = first).
pub fn load_order(conn: &Connection, source: &str) -> Result<HashMap<String, usize>, VaultError> {
    let mut stmt = conn
        .prepare(
            "SELECT file_hash FROM meta.loads WHERE source = ? AND status = 'loaded' \
             GROUP BY file_hash ORDER BY min(loaded_at), min(run_id)",
        )
        .map_err(VaultError::db("cannot read meta.loads"))?;
    let hashes: Vec<String> = stmt
        .query_map([source], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(VaultError::db("cannot read meta.loads"))?;
    Ok(hashes
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h, i))
        .collect())
}

/// Record `definition` with the loads of `source` from before definitions were recorded.
pub fn adopt_definition(
    conn: &Connection,
    source: &str,
    definition: &str,
) -> Result<(), VaultError> {
    conn.execute(
        "UPDATE meta.loads SET definition = ? WHERE source = ? AND definition IS NULL",
        params![definition, source],
    )
    .map(|_| ())
    .map_err(VaultError::db("cannot update meta.loads"))
}

/// Rows per byte of the units this source has loaded; 0 when it has loaded none.
pub fn rows_per_byte(conn: &Connection, source: &str) -> f64 {
    conn.query_row(
        "SELECT sum(l.rows_read) / nullif(sum(f.size), 0) FROM meta.loads l \
         JOIN meta.files f ON f.file_hash = l.file_hash AND f.source = l.source \
         WHERE l.source = ? AND l.status = 'loaded'",
        [source],
        |r| r.get::<_, Option<f64>>(0),
    )
    .ok()
    .flatten()
    .unwrap_or(0.0)
}

/// What the file system said of each file this source loaded (or skipped), by path, with
/// the file's hash: a file whose stat has not changed need not be read again.
pub fn file_stats(
    conn: &Connection,
    source: &str,
) -> Result<HashMap<String, (FileStat, String)>, VaultError> {
    let mut stmt = conn
        .prepare(
            "SELECT path, size, mtime_ns, ctime_ns, inode, file_hash FROM meta.file_stats \
             WHERE source = ?",
        )
        .map_err(VaultError::db("cannot read meta.file_stats"))?;
    let rows = stmt
        .query_map(params![source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    FileStat {
                        size: r.get::<_, i64>(1)? as u64,
                        mtime_ns: r.get(2)?,
                        ctime_ns: r.get(3)?,
                        inode: r.get(4)?,
                    },
                    r.get::<_, String>(5)?,
                ),
            ))
        })
        .and_then(|rows| rows.collect::<Result<_, _>>())
        .map_err(VaultError::db("cannot read meta.file_stats"));
    rows
}

/// Remember what the file system said of `path` when its bytes hashed to `file_hash`.
pub fn record_stat(
    conn: &Connection,
    source: &str,
    path: &str,
    file_hash: &str,
    stat: FileStat,
) -> Result<(), VaultError> {
    conn.execute(
        "DELETE FROM meta.file_stats WHERE source = ? AND path = ?",
        params![source, path],
    )
    .and_then(|_| {
        conn.execute(
            "INSERT INTO meta.file_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![
                source,
                path,
                stat.size as i64,
                stat.mtime_ns,
                stat.ctime_ns,
                stat.inode,
                file_hash
            ],
        )
    })
    .map(|_| ())
    .map_err(VaultError::db("cannot write meta.file_stats"))
}

/// The reader state (such as an API cursor) `source` saved under `key`.
pub fn state(conn: &Connection, source: &str, key: &str) -> Result<Option<String>, VaultError> {
    conn.query_row(
        "SELECT value FROM meta.state WHERE source = ? AND key = ?",
        params![source, key],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
    .map_err(VaultError::db("cannot read meta.state"))
}

/// Save reader state; call inside the unit's transaction, so it lands with the rows.
pub fn set_state(
    conn: &Connection,
    source: &str,
    key: &str,
    value: &str,
    at: DateTime<Utc>,
) -> Result<(), VaultError> {
    conn.execute(
        "DELETE FROM meta.state WHERE source = ? AND key = ?",
        params![source, key],
    )
    .and_then(|_| {
        conn.execute(
            "INSERT INTO meta.state VALUES (?, ?, ?, ?::TIMESTAMPTZ)",
            params![source, key, value, at.to_rfc3339()],
        )
    })
    .map(|_| ())
    .map_err(VaultError::db("cannot write meta.state"))
}

/// Forget what the vault's bookkeeping says of `source` (for a rebuild of it): its
/// satellites, loads, files, file stats and state.
pub fn forget_source(conn: &Connection, source: &str) -> Result<(), VaultError> {
    for table in ["satellites", "loads", "files", "file_stats", "state"] {
        conn.execute(
            &format!("DELETE FROM meta.{table} WHERE source = ?"),
            [source],
        )
        .map_err(VaultError::db(format!("cannot clear meta.{table}")))?;
    }
    Ok(())
}

/// Mark runs still `running` as `interrupted`: called by a process that holds the vault's
/// write lock, which no running run can then hold (it was killed, or its machine went
/// down). The number of runs marked.
pub fn mark_interrupted(conn: &Connection) -> Result<usize, VaultError> {
    conn.execute(
        "UPDATE meta.runs SET status = 'interrupted', finished_at = coalesce(finished_at, now()) \
         WHERE status = 'running'",
        [],
    )
    .map_err(VaultError::db("cannot update meta.runs"))
}

/// Start a run: a `meta.runs` row, committed at once so that even a crashed run is listed.
pub fn start_run(conn: &Connection, command: &str) -> Result<i64, VaultError> {
    conn.query_row(
        "INSERT INTO meta.runs (run_id, command, started_at, status) \
         SELECT coalesce(max(run_id), 0) + 1, ?, now(), 'running' FROM meta.runs RETURNING run_id",
        params![command],
        |r| r.get(0),
    )
    .map_err(VaultError::db("cannot record the run"))
}

/// Units of a run by what became of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunTally {
    pub loaded: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// Finish a run with its outcome.
pub fn finish_run(
    conn: &Connection,
    run_id: i64,
    exit_code: i32,
    tally: RunTally,
) -> Result<(), VaultError> {
    let status = match exit_code {
        0 => "ok",
        crate::interrupt::EXIT_INTERRUPTED => "interrupted",
        _ => "failed",
    };
    conn.execute(
        "UPDATE meta.runs SET finished_at = now(), status = ?, exit_code = ?, units_loaded = ?, \
         units_skipped = ?, units_failed = ? WHERE run_id = ?",
        params![
            status,
            exit_code,
            tally.loaded as i64,
            tally.skipped as i64,
            tally.failed as i64,
            run_id
        ],
    )
    .map_err(VaultError::db("cannot finish the run"))?;
    Ok(())
}

/// `status`: per source, files loaded, failures, satellites, rows and the last load.
pub const STATUS_SOURCES: &str = "SELECT s.source, \
        count(DISTINCT l.file_hash) FILTER (WHERE l.status = 'loaded') AS files, \
        count(*) FILTER (WHERE l.status IN ('failed', 'rejected')) AS failed_loads, \
        (SELECT count(*) FROM meta.satellites m WHERE m.source = s.source) AS satellites, \
        (SELECT max(table_name) FROM meta.satellites m WHERE m.source = s.source) AS current_satellite, \
        coalesce(sum(l.new_rows + l.changed_rows), 0) AS satellite_rows, \
        strftime(max(l.loaded_at)::TIMESTAMP, '%Y-%m-%d %H:%M:%S') AS last_load \
    FROM (SELECT DISTINCT source FROM meta.loads UNION SELECT DISTINCT source FROM meta.satellites) s \
    LEFT JOIN meta.loads l USING (source) GROUP BY s.source ORDER BY s.source";

/// `runs`: the last `limit` runs.
pub fn recent_runs(limit: u32) -> String {
    format!(
        "SELECT run_id, command, strftime(started_at::TIMESTAMP, '%Y-%m-%d %H:%M:%S') AS started, \
                round(epoch(finished_at::TIMESTAMP) - epoch(started_at::TIMESTAMP), 2) AS seconds, status, exit_code, \
                units_loaded AS loaded, units_skipped AS skipped, units_failed AS failed \
         FROM meta.runs ORDER BY run_id DESC LIMIT {limit}"
    )
}

/// `runs`: how many units of the last `limit` runs failed.
pub fn recent_failures(conn: &Connection, limit: u32) -> Result<i64, VaultError> {
    conn.query_row(
        &format!(
            "SELECT count(*) FROM meta.loads WHERE status <> 'loaded' AND run_id IN \
             (SELECT run_id FROM meta.runs ORDER BY run_id DESC LIMIT {limit})"
        ),
        [],
        |r| r.get(0),
    )
    .map_err(VaultError::db("cannot read meta.loads"))
}

/// `runs`: the units of the last `limit` runs that failed.
pub fn recent_failed_units(limit: u32) -> String {
    format!(
        "SELECT run_id, source, path, status, error FROM meta.loads \
         WHERE status <> 'loaded' AND run_id IN \
         (SELECT run_id FROM meta.runs ORDER BY run_id DESC LIMIT {limit}) \
         ORDER BY run_id DESC, source, path"
    )
}
