//! Vault stage, writer: one input unit into hubs and a satellite, in one transaction.
//!
//! The `UnitLoad` holds the transaction and the appenders; a `Stager` (stager.rs) feeds it
//! from another thread. The direct way appends rows straight into the satellite and new
//! keys into a small temporary table for the hubs; the staged way appends every row to a
//! temporary table and lets SQL pick the rows at commit.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use duckdb::arrow::array::AsArray;
use duckdb::arrow::datatypes::Int64Type;
use duckdb::{params, Appender, Connection};

use super::ddl::{ident, literal};
use super::latest::{prefix, Latest};
use super::stager::{Constants, Staged, Stager};
use crate::defs::{Definitions, Source};
use crate::error::VaultError;
use crate::lake::FileStat;
use crate::timings::Timings;
use crate::validate::Contract;

const STAGE: &str = "ingestor_stage";
const KEYS: &str = "ingestor_keys";

/// What one input unit is, for the manifest and the load record.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The run loading it.
    pub run_id: i64,
    /// BLAKE3 of the file's bytes (the lake name).
    pub file_hash: String,
    /// Path as the user knows it (relative to the project when possible).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Counters of one loaded unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    pub rows_read: u64,
    pub new_keys: u64,
    pub new_rows: u64,
    pub changed_rows: u64,
    pub unchanged_rows: u64,
    pub duplicate_keys: u64,
}

/// What decides between the direct and the staged way for one unit.
#[derive(Debug, Clone, Default)]
pub struct WayChoice {
    /// False after a repeated key: only the staged way keeps a key's last row.
    pub allow_direct: bool,
    /// The satellite whose latest hashdiffs the run already holds, if any.
    pub cached: Option<String>,
    /// Rows this source is about to load in this run (this unit and the ones after it),
    /// estimated from sizes and the bytes per row of earlier loads.
    pub rows_ahead: f64,
    /// Whether this source has more units after this one in the run.
    pub more_units: bool,
}

/// Units from this size (bytes) up to `HUGE_UNIT` load an empty satellite the staged way:
/// DuckDB then compresses the new row groups on every core in one INSERT, where appending
/// into the satellite compresses on one.
pub const LARGE_UNIT: u64 = 16 << 20;

/// Units above this size load the direct way whatever the satellite holds: the staged way
/// keeps the whole unit in memory until commit, the direct way lets DuckDB write full row
/// groups to disk as it goes (with `memory_limit`, memory stays flat as inputs grow).
pub const HUGE_UNIT: u64 = 256 << 20;

impl WayChoice {
    /// Whether to load the direct way into `satellite`, which has `sat_rows` rows, a unit
    /// of `size` bytes. Reading a satellite's latest hashdiffs costs about as much as the
    /// satellite is big, so it is done when the run has at least half as many rows to
    /// load, and then kept for the run's later units; a small load compares its few keys
    /// in SQL instead.
    pub fn direct(&self, satellite: &str, sat_rows: u64, size: u64) -> bool {
        if !self.allow_direct {
            return false;
        }
        if size > HUGE_UNIT {
            return true;
        }
        if sat_rows == 0 {
            return size < LARGE_UNIT;
        }
        self.cached.as_deref() == Some(satellite) || self.rows_ahead * 2.0 >= sat_rows as f64
    }
}

/// An open load of one unit. Dropping it without `commit` rolls everything back.
pub struct UnitLoad<'c> {
    conn: &'c Connection,
    /// Direct way: the satellite's appender.
    satellite_appender: Option<Appender<'c>>,
    /// Staged way: the staging table's appender; direct way: the new keys' appender.
    stage_appender: Option<Appender<'c>>,
    direct: bool,
    open: bool,
    source: Source,
    unit: Unit,
    contract: Contract,
    satellite: String,
    /// How many rows the satellite had when the unit began.
    satellite_rows: u64,
    load_ts: DateTime<Utc>,
    rows_staged: u64,
    /// Time spent per phase in this unit.
    pub timings: Timings,
}

impl<'c> UnitLoad<'c> {
    /// Begin the unit's transaction: find or create the satellite, choose the way (see
    /// `Way::choose`), create the temporary table, open the appenders.
    pub fn begin(
        conn: &'c Connection,
        defs: &Definitions,
        source: &Source,
        unit: Unit,
        contract: Contract,
        choice: &WayChoice,
    ) -> Result<Self, VaultError> {
        let start = Instant::now();
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(VaultError::db("cannot begin the load transaction"))?;
        let load_ts = Utc::now();
        let mut load = UnitLoad {
            conn,
            satellite_appender: None,
            stage_appender: None,
            direct: false,
            open: true,
            source: source.clone(),
            unit,
            satellite: String::new(),
            satellite_rows: 0,
            load_ts,
            rows_staged: 0,
            timings: Timings::default(),
            contract,
        };
        load.satellite =
            super::ddl::satellite_for(conn, defs, &source.id, &load.contract, load_ts)?;
        let sat_rows = count(
            conn,
            &format!("SELECT count(*) FROM vault.{}", ident(&load.satellite)),
        )?;
        load.satellite_rows = sat_rows;
        let direct = choice.direct(&load.satellite, sat_rows, load.unit.size);
        load.direct = direct;
        let table = if direct { KEYS } else { STAGE };
        let mut cols = String::from("hk UUID, business_key VARCHAR");
        if !direct {
            cols =
                String::from("hk UUID, hashdiff UUID, business_key VARCHAR, \"row_number\" BIGINT");
            for c in &load.contract.columns {
                cols.push_str(&format!(", {} {}", ident(&c.name), c.ty.sql()));
            }
        }
        conn.execute_batch(&format!("CREATE TEMP TABLE {table} ({cols})"))
            .map_err(VaultError::db("cannot create the staging table"))?;
        load.stage_appender = Some(
            conn.appender_to_catalog_and_db(table, "temp", "main")
                .map_err(VaultError::db("cannot open the staging appender"))?,
        );
        if direct {
            load.satellite_appender = Some(
                conn.appender_to_db(&load.satellite, "vault")
                    .map_err(VaultError::db("cannot open the satellite appender"))?,
            );
        }
        load.timings.add("begin", start.elapsed());
        Ok(load)
    }

    /// Whether this unit is loaded the direct way.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The satellite this unit loads into.
    pub fn satellite(&self) -> &str {
        &self.satellite
    }

    /// What the unit's satellite rows share.
    pub fn constants(&self) -> Constants {
        Constants {
            load_ts: self.load_ts,
            record_source: self.source.id.clone(),
            file_hash: self.unit.file_hash.clone(),
            run_id: self.unit.run_id,
        }
    }

    /// The satellite's latest hashdiff per key.
    pub fn latest(&mut self) -> Result<Latest, VaultError> {
        if self.satellite_rows == 0 {
            return Ok(Latest::new());
        }
        let start = Instant::now();
        let context = format!("cannot read the latest rows of `{}`", self.satellite);
        // UUIDs come out of DuckDB as their 16 bytes only with lossless Arrow conversion.
        self.conn
            .execute_batch("SET arrow_lossless_conversion = true")
            .map_err(VaultError::db(context.clone()))?;
        let read = self.read_latest(&context);
        self.conn
            .execute_batch("RESET arrow_lossless_conversion")
            .map_err(VaultError::db(context))?;
        self.timings.add("read latest", start.elapsed());
        read
    }

    fn read_latest(&self, context: &str) -> Result<Latest, VaultError> {
        let sql = format!(
            "SELECT hk, hashdiff, epoch_us(load_ts::TIMESTAMP) FROM vault.{}",
            ident(&self.satellite)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(VaultError::db(context.to_string()))?;
        let mut rows = Vec::with_capacity(self.satellite_rows as usize);
        // Streamed: the satellite's rows are never all in memory at once.
        for batch in stmt
            .stream_arrow([])
            .map_err(VaultError::db(context.to_string()))?
        {
            let batch = batch.map_err(VaultError::db(context.to_string()))?;
            let (Some(hks), Some(diffs), Some(times)) = (
                batch.column(0).as_fixed_size_binary_opt(),
                batch.column(1).as_fixed_size_binary_opt(),
                batch.column(2).as_primitive_opt::<Int64Type>(),
            ) else {
                return Err(VaultError::Refused(format!(
                    "{context}: keys are not 16-byte UUIDs"
                )));
            };
            for i in 0..batch.num_rows() {
                if let (Ok(k), Ok(d)) = (hks.value(i).try_into(), diffs.value(i).try_into()) {
                    rows.push((prefix(k), times.value(i), prefix(d)));
                }
            }
        }
        Ok(Latest::from_rows(rows))
    }

    /// Append what the stager made of one batch.
    pub fn append(&mut self, staged: Staged) -> Result<(), VaultError> {
        let start = Instant::now();
        let context = "cannot append to the vault";
        match staged {
            Staged::Rows(batch) => {
                self.rows_staged += batch.num_rows() as u64;
                if let Some(a) = self.stage_appender.as_mut() {
                    a.append_record_batch(batch)
                        .map_err(VaultError::db(context))?;
                }
            }
            Staged::Direct { satellite, keys } => {
                if let (Some(batch), Some(a)) = (satellite, self.satellite_appender.as_mut()) {
                    a.append_record_batch(batch)
                        .map_err(VaultError::db(context))?;
                    // An appender buffers about 200,000 rows before it hands them to the
                    // table (50 MB of these rows); handed over a batch at a time, they
                    // go into row groups DuckDB can write out under its memory limit.
                    a.flush().map_err(VaultError::db(context))?;
                }
                if let (Some(batch), Some(a)) = (keys, self.stage_appender.as_mut()) {
                    a.append_record_batch(batch)
                        .map_err(VaultError::db(context))?;
                    a.flush().map_err(VaultError::db(context))?;
                }
            }
            Staged::Repeat => {
                return Err(VaultError::Refused(
                    "a repeated key reached the direct load; this is a bug".into(),
                ))
            }
        }
        self.timings.add("append", start.elapsed());
        Ok(())
    }

    /// Move staged rows into the hubs and the satellite, record the unit, and commit.
    /// `stager` is the one that staged this unit's batches; the unit's phase times are
    /// added to `timings`.
    pub fn commit(
        mut self,
        stager: &Stager,
        timings: &mut Timings,
    ) -> Result<LoadCounts, VaultError> {
        let result = self.commit_inner(stager);
        timings.merge(&self.timings);
        result
    }

    fn commit_inner(&mut self, stager: &Stager) -> Result<LoadCounts, VaultError> {
        let start = Instant::now();
        for appender in [self.satellite_appender.take(), self.stage_appender.take()]
            .into_iter()
            .flatten()
        {
            let mut appender = appender;
            appender
                .flush()
                .map_err(VaultError::db("cannot flush an appender"))?;
        }
        self.timings.add("append", start.elapsed());
        let counts = if self.direct {
            let new_keys = self.insert_hub_keys(KEYS, stager)?;
            let c = stager.counts;
            LoadCounts {
                rows_read: c.new_rows + c.changed_rows + c.unchanged_rows,
                new_keys,
                new_rows: c.new_rows,
                changed_rows: c.changed_rows,
                unchanged_rows: c.unchanged_rows,
                duplicate_keys: 0,
            }
        } else {
            self.commit_staged(stager)?
        };
        let start = Instant::now();
        let conn = self.conn;
        let ts = literal(&self.load_ts.to_rfc3339());
        let (hash, source) = (literal(&self.unit.file_hash), literal(&self.source.id));
        conn.execute_batch(&format!(
            "UPDATE meta.files SET last_seen = {ts}::TIMESTAMPTZ WHERE file_hash = {hash} AND source = {source}; \
             INSERT INTO meta.files SELECT {hash}, {source}, {}, {}, {ts}::TIMESTAMPTZ, {ts}::TIMESTAMPTZ \
             WHERE NOT EXISTS (SELECT 1 FROM meta.files WHERE file_hash = {hash} AND source = {source})",
            literal(&self.unit.path),
            self.unit.size
        ))
        .map_err(VaultError::db("cannot write the lake manifest"))?;
        record_load(
            conn,
            &self.unit,
            &self.source.id,
            Some(&self.satellite),
            &counts,
            "loaded",
            None,
        )?;
        let table = if self.direct { KEYS } else { STAGE };
        conn.execute_batch(&format!("DROP TABLE temp.{table}; COMMIT"))
            .map_err(VaultError::db("cannot commit the load"))?;
        self.open = false;
        self.timings.add("sql meta and commit", start.elapsed());
        Ok(counts)
    }

    /// Add the keys of `table` (a temporary table with hk and business_key) that a hub
    /// lacks to each of the source's hubs; the most any hub gained.
    fn insert_hub_keys(&mut self, table: &str, stager: &Stager) -> Result<u64, VaultError> {
        let repeated = stager.repeated;
        let start = Instant::now();
        let ts = literal(&self.load_ts.to_rfc3339());
        let mut new_keys = 0u64;
        for tag in &self.source.tags {
            let hub = format!("vault.{}", ident(&format!("hub_{tag}")));
            // Only a large unit gains from skipping the anti-join into an empty hub.
            let large = self.rows_staged > 50_000 || stager.counts.new_rows > 50_000;
            let hub_empty = large && table_is_empty(self.conn, &format!("hub_{tag}"))?;
            let select = if hub_empty && !repeated {
                format!("SELECT hk, business_key, ?, {ts}::TIMESTAMPTZ, ?, ? FROM temp.{table}")
            } else {
                format!(
                    "SELECT hk, any_value(business_key), ?, {ts}::TIMESTAMPTZ, ?, ? FROM temp.{table} s \
                     WHERE NOT EXISTS (SELECT 1 FROM {hub} h WHERE h.hk = s.hk) GROUP BY hk"
                )
            };
            let added = self
                .conn
                .execute(
                    &format!("INSERT INTO {hub} {select}"),
                    params![self.source.namespace(), self.source.id, self.unit.run_id],
                )
                .map_err(VaultError::db(format!("cannot add keys to hub `{tag}`")))?;
            new_keys = new_keys.max(added as u64);
        }
        self.timings.add("sql hubs", start.elapsed());
        Ok(new_keys)
    }

    /// The staged way: SQL picks the rows (a repeated key keeps its last row).
    fn commit_staged(&mut self, stager: &Stager) -> Result<LoadCounts, VaultError> {
        let conn = self.conn;
        let ts = literal(&self.load_ts.to_rfc3339());
        let sat = format!("vault.{}", ident(&self.satellite));
        let context = format!("cannot load into `{}`", self.satellite);
        let sql = |s: &str| conn.execute(s, []).map_err(VaultError::db(context.clone()));
        let rows = if stager.repeated {
            format!(
                "(SELECT * FROM temp.{STAGE} \
                  QUALIFY row_number() OVER (PARTITION BY hk ORDER BY \"row_number\" DESC) = 1)"
            )
        } else {
            format!("temp.{STAGE}")
        };
        let distinct = if stager.repeated {
            count(
                conn,
                &format!("SELECT count(DISTINCT hk) FROM temp.{STAGE}"),
            )?
        } else {
            self.rows_staged
        };
        let new_keys = self.insert_hub_keys(STAGE, stager)?;
        let start = Instant::now();
        let payload: Vec<String> = self
            .contract
            .columns
            .iter()
            .map(|c| ident(&c.name))
            .collect();
        let payload = payload.join(", ");
        // The satellite's own columns, taking hk, hashdiff and row_number from `prefix`.
        let columns = |prefix: &str| {
            let payload: Vec<String> = self
                .contract
                .columns
                .iter()
                .map(|c| format!("{prefix}{}", ident(&c.name)))
                .collect();
            format!(
                "{prefix}hk, {ts}::TIMESTAMPTZ, {prefix}hashdiff, {}, {}, {prefix}\"row_number\", {}, {}",
                literal(&self.source.id),
                literal(&self.unit.file_hash),
                self.unit.run_id,
                payload.join(", ")
            )
        };
        let target = format!(
            "INSERT INTO {sat} (hk, load_ts, hashdiff, record_source, file_hash, \"row_number\", run_id, {payload})"
        );
        let insert = format!("{target} SELECT {}", columns(""));
        let insert_from_s = format!("{target} SELECT {}", columns("s."));
        let (new_rows, changed_rows) = if self.satellite_rows == 0 {
            // Every key is new to an empty satellite: no comparison needed.
            let n = sql(&format!("{insert} FROM {rows}"))?;
            (n as u64, 0)
        } else {
            // Rows whose key is new to the satellite, or whose hashdiff differs from the
            // latest row of that key: counted, then inserted, with the same join (cheaper
            // than materialising it in a temporary table, a catalog change, per unit).
            let delta = format!(
                "FROM {rows} s \
                 LEFT JOIN (SELECT hk, arg_max(hashdiff, load_ts) AS latest FROM {sat} \
                            WHERE hk IN (SELECT hk FROM temp.{STAGE}) GROUP BY hk) l \
                   ON l.hk = s.hk \
                 WHERE l.hk IS NULL OR l.latest <> s.hashdiff"
            );
            let (new_rows, changed_rows): (i64, i64) = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FILTER (WHERE l.hk IS NULL), \
                                count(*) FILTER (WHERE l.hk IS NOT NULL) {delta}"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(VaultError::db("cannot count the loaded rows"))?;
            if new_rows + changed_rows > 0 {
                sql(&format!("{insert_from_s} {delta}"))?;
            }
            (new_rows as u64, changed_rows as u64)
        };
        self.timings.add("sql satellite", start.elapsed());
        Ok(LoadCounts {
            rows_read: self.rows_staged,
            new_keys,
            new_rows,
            changed_rows,
            unchanged_rows: distinct - new_rows - changed_rows,
            duplicate_keys: self.rows_staged - distinct,
        })
    }
}

impl Drop for UnitLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            drop(self.satellite_appender.take());
            drop(self.stage_appender.take());
            // Nothing of an unfinished unit may stay visible.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn count(conn: &Connection, sql: &str) -> Result<u64, VaultError> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(VaultError::db("cannot count staged rows"))
}

/// Whether `vault.<table>` has no rows (DuckDB answers from table metadata).
fn table_is_empty(conn: &Connection, table: &str) -> Result<bool, VaultError> {
    let sql = format!("SELECT NOT EXISTS (SELECT 1 FROM vault.{})", ident(table));
    conn.query_row(&sql, [], |r| r.get(0))
        .map_err(VaultError::db(format!("cannot read `{table}`")))
}

/// Write a `meta.loads` row.
pub fn record_load(
    conn: &Connection,
    unit: &Unit,
    source: &str,
    satellite: Option<&str>,
    counts: &LoadCounts,
    status: &str,
    error: Option<&str>,
) -> Result<(), VaultError> {
    conn.execute(
        "INSERT INTO meta.loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        params![
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
            i64::from(status == "rejected") * counts.rows_read as i64,
            counts.duplicate_keys as i64,
            status,
            error
        ],
    )
    .map_err(VaultError::db("cannot record the load"))?;
    Ok(())
}

/// What the file system said of each file this source loaded (or skipped), by path, with
/// the file's hash: a file whose stat has not changed need not be read again.
pub fn file_stats(
    conn: &Connection,
    source: &str,
) -> Result<std::collections::HashMap<String, (FileStat, String)>, VaultError> {
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

/// The hashes of every file this source has loaded.
pub fn loaded_files(conn: &Connection, source: &str) -> Result<HashSet<String>, VaultError> {
    let mut stmt = conn
        .prepare("SELECT DISTINCT file_hash FROM meta.loads WHERE source = ? AND status = 'loaded'")
        .map_err(VaultError::db("cannot read meta.loads"))?;
    let hashes = stmt
        .query_map(params![source], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<HashSet<_>, _>>())
        .map_err(VaultError::db("cannot read meta.loads"));
    hashes
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

/// Finish a run with its outcome.
pub fn finish_run(
    conn: &Connection,
    run_id: i64,
    exit_code: i32,
    loaded: u64,
    skipped: u64,
    failed: u64,
) -> Result<(), VaultError> {
    let status = if exit_code == 0 { "ok" } else { "failed" };
    conn.execute(
        "UPDATE meta.runs SET finished_at = now(), status = ?, exit_code = ?, units_loaded = ?, \
         units_skipped = ?, units_failed = ? WHERE run_id = ?",
        params![
            status,
            exit_code,
            loaded as i64,
            skipped as i64,
            failed as i64,
            run_id
        ],
    )
    .map_err(VaultError::db("cannot finish the run"))?;
    Ok(())
}
