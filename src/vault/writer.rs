//! Vault stage, writer: one input unit into hubs and a satellite, in one transaction.
//!
//! The `UnitLoad` holds the transaction; a `Stager` (stager.rs) feeds it from another
//! thread. The direct way moves rows straight into the satellite while the input is read,
//! DuckDB scanning them as a feed (feed.rs) on every core, and their keys into the hubs
//! after each statement; the staged way appends every row to a temporary table and lets
//! SQL pick the rows at commit.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use duckdb::arrow::array::AsArray;
use duckdb::arrow::datatypes::Int64Type;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{params, Appender, Connection};

use super::feed::{self, lock, Feed};
use super::latest::{prefix, Latest};
use super::meta::{self, LoadCounts, Unit, UnitStatus};
use super::stager::{keys_schema, satellite_schema, Staged, Stager};
use crate::db::{ident, literal, Transaction};
use crate::defs::{Definitions, Source};
use crate::error::VaultError;
use crate::timings::Timings;
use crate::validate::Contract;

const STAGE: &str = "ingestor_stage";

/// Rows the direct way moves per statement; the keys it gathers meanwhile (about 40
/// bytes a row) are what stays in memory.
pub const DIRECT_STATEMENT_ROWS: usize = 1 << 20;

/// The direct way met a key given twice in one unit; the unit is loaded again, staged.
#[derive(Debug, thiserror::Error)]
#[error("a key is given twice in this input")]
pub struct RepeatedKey;

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

/// DuckDB's memory limit while the satellite's latest hashdiffs are read.
const LATEST_MEMORY_LIMIT: &str = "16MB";

/// Units above this size load the direct way whatever the satellite holds: the staged way
/// keeps the whole unit in memory until commit, the direct way lets DuckDB write full row
/// groups to disk as it goes (with `memory_limit`, memory stays flat as inputs grow).
pub const HUGE_UNIT: u64 = 256 << 20;

impl WayChoice {
    /// Whether to load the direct way into `satellite`, which has `sat_rows` rows, a unit
    /// of `size` bytes. Reading a satellite's latest hashdiffs costs about as much as the
    /// satellite is big, so it is done when the run has at least half as many rows to
    /// load, and then kept for the run's later units; a small load compares its few keys
    /// in SQL instead. An empty satellite has nothing to compare.
    pub fn direct(&self, satellite: &str, sat_rows: u64, size: u64) -> bool {
        if !self.allow_direct {
            return false;
        }
        if size > HUGE_UNIT || sat_rows == 0 {
            return true;
        }
        self.cached.as_deref() == Some(satellite) || self.rows_ahead * 2.0 >= sat_rows as f64
    }
}

/// Where the keys for the hubs are.
enum Keys {
    /// The staging table (staged way).
    Staged,
    /// Batches of hk and business_key (direct way).
    Batches(Vec<RecordBatch>),
}

/// An open load of one unit. Dropping it without `commit` rolls everything back.
pub struct UnitLoad<'c> {
    conn: &'c Connection,
    /// Staged way: the staging table's appender (dropped before the transaction ends).
    stage_appender: Option<Appender<'c>>,
    /// The unit's transaction; `None` once committed.
    tx: Option<Transaction<'c>>,
    direct: bool,
    source: Source,
    unit: Unit,
    contract: Contract,
    satellite: String,
    /// How many rows the satellite had when the unit began.
    satellite_rows: u64,
    /// Reader state to save in `meta.state` with the rows.
    end_state: Option<String>,
    /// Staged way: rows appended to the staging table.
    rows_staged: u64,
    /// Direct way: the keys each hub gained so far.
    hub_keys: Vec<u64>,
    /// Time spent per phase in this unit.
    pub timings: Timings,
}

impl<'c> UnitLoad<'c> {
    /// Begin the unit's transaction: find or create the satellite, choose the way (see
    /// `WayChoice::direct`); the staged way creates its staging table and appender.
    pub fn begin(
        conn: &'c Connection,
        defs: &Definitions,
        source: &Source,
        unit: Unit,
        contract: Contract,
        choice: &WayChoice,
    ) -> Result<Self, VaultError> {
        let start = Instant::now();
        let tx = Transaction::begin(conn, "the load transaction")?;
        let load_ts = unit.load_ts;
        let name = unit.satellite_name.clone();
        let mut load = UnitLoad {
            conn,
            stage_appender: None,
            tx: Some(tx),
            direct: false,
            source: source.clone(),
            unit,
            satellite: String::new(),
            satellite_rows: 0,
            end_state: None,
            rows_staged: 0,
            hub_keys: Vec::new(),
            timings: Timings::default(),
            contract,
        };
        load.satellite = super::ddl::satellite_for(
            conn,
            defs,
            &source.id,
            &load.contract,
            load_ts,
            name.as_deref(),
        )?;
        let sat_rows = count(
            conn,
            &format!("SELECT count(*) FROM vault.{}", ident(&load.satellite)),
        )?;
        load.satellite_rows = sat_rows;
        let direct = choice.direct(&load.satellite, sat_rows, load.unit.size);
        load.direct = direct;
        if !direct {
            let mut cols =
                String::from("hk UUID, hashdiff UUID, business_key VARCHAR, \"row_number\" BIGINT");
            for c in &load.contract.columns {
                cols.push_str(&format!(", {} {}", ident(&c.name), c.ty.sql()));
            }
            conn.execute_batch(&format!("CREATE TEMP TABLE {STAGE} ({cols})"))
                .map_err(VaultError::db("cannot create the staging table"))?;
            load.stage_appender = Some(
                conn.appender_to_catalog_and_db(STAGE, "temp", "main")
                    .map_err(VaultError::db("cannot open the staging appender"))?,
            );
        }
        load.timings.add("begin", start.elapsed());
        Ok(load)
    }

    /// Reader state (such as an API cursor) to save in `meta.state` in the unit's own
    /// transaction: it lands with the rows or not at all.
    pub fn save_state(&mut self, state: Option<String>) {
        self.end_state = state;
    }

    /// Whether this unit is loaded the direct way.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The satellite this unit loads into.
    pub fn satellite(&self) -> &str {
        &self.satellite
    }

    /// The satellite's latest hashdiff per key.
    pub fn latest(&mut self) -> Result<Latest, VaultError> {
        if self.satellite_rows == 0 {
            return Ok(Latest::new());
        }
        let start = Instant::now();
        let context = format!("cannot read the latest rows of `{}`", self.satellite);
        // UUIDs come out of DuckDB as their 16 bytes only with lossless Arrow conversion.
        // The read is one scan, which needs next to no buffer memory; with less, DuckDB
        // evicts the blocks it read, which would otherwise sit next to the map being
        // built (the peak of a large later load).
        let limit: String = self
            .conn
            .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
            .map_err(VaultError::db(context.clone()))?;
        self.conn
            .execute_batch(&format!(
                "SET arrow_lossless_conversion = true; SET memory_limit = '{LATEST_MEMORY_LIMIT}'"
            ))
            .map_err(VaultError::db(context.clone()))?;
        let read = self.read_latest(&context);
        self.conn
            .execute_batch(&format!(
                "RESET arrow_lossless_conversion; SET memory_limit = {}",
                literal(&limit)
            ))
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

    /// Staged way: append what the stager made of one batch to the staging table.
    pub fn append(&mut self, staged: Staged) -> Result<(), VaultError> {
        let start = Instant::now();
        let (Staged::Rows(batch), Some(appender)) = (staged, self.stage_appender.as_mut()) else {
            return Err(VaultError::Refused(
                "a direct batch reached the staged load; this is a bug".into(),
            ));
        };
        self.rows_staged += batch.num_rows() as u64;
        appender
            .append_record_batch(batch)
            .map_err(VaultError::db("cannot append to the vault"))?;
        self.timings.add("append", start.elapsed());
        Ok(())
    }

    /// Direct way: move what the stager makes into the satellite while the input is
    /// still being read, and the keys of those rows into the hubs. DuckDB scans the
    /// batches as a feed (vault::feed) on every core, in statements of at most
    /// `DIRECT_STATEMENT_ROWS` rows, after each of which the keys gathered meanwhile go
    /// into the hubs and out of memory. An error of the input, or a repeated key, ends
    /// the load (the caller rolls back).
    pub fn load_direct(&mut self, staged: Receiver<anyhow::Result<Staged>>) -> anyhow::Result<()> {
        let start = Instant::now();
        self.hub_keys = vec![0; self.source.tags.len()];
        let keys: Arc<Mutex<Vec<RecordBatch>>> = Arc::default();
        let gathered = keys.clone();
        let next: feed::Source = Box::new(move || loop {
            match staged.recv() {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Staged::Direct { satellite, keys })) => {
                    if let Some(k) = keys {
                        lock(&gathered).push(k);
                    }
                    if let Some(batch) = satellite {
                        return Ok(Some(batch));
                    }
                }
                Ok(Ok(Staged::Repeat)) => return Err(RepeatedKey.into()),
                Ok(Ok(Staged::Rows(_))) => {
                    return Err(VaultError::Refused(
                        "a staged batch reached the direct load; this is a bug".into(),
                    )
                    .into())
                }
            }
        });
        let rows_feed = Feed::register(satellite_schema(&self.contract), next);
        rows_feed.pause_after(DIRECT_STATEMENT_ROWS);
        let insert = format!("{} FROM {}", self.satellite_insert(""), rows_feed.sql());
        let context = format!("cannot load into `{}`", self.satellite);
        let mut hubs = std::time::Duration::ZERO;
        loop {
            let inserted = self.conn.execute(&insert, []);
            if let Some(e) = rows_feed.take_error() {
                return Err(e);
            }
            inserted.map_err(VaultError::db(context.clone()))?;
            let batches = std::mem::take(&mut *lock(&keys));
            if !batches.is_empty() {
                let hubs_start = Instant::now();
                let added = self.insert_hub_keys(&Keys::Batches(batches), false)?;
                hubs += hubs_start.elapsed();
                for (total, added) in self.hub_keys.iter_mut().zip(added) {
                    *total += added;
                }
            }
            if rows_feed.is_done() {
                break;
            }
            rows_feed.resume();
        }
        self.timings.add("sql satellite", start.elapsed() - hubs);
        Ok(())
    }

    /// `INSERT INTO <satellite> (…) SELECT …` of rows with hk, hashdiff, row_number and
    /// the payload, their columns prefixed with `prefix`; the unit's constants are
    /// literals.
    fn satellite_insert(&self, prefix: &str) -> String {
        let ts = literal(&self.unit.load_ts.to_rfc3339());
        let names: Vec<String> = self
            .contract
            .columns
            .iter()
            .map(|c| ident(&c.name))
            .collect();
        let values: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
        format!(
            "INSERT INTO vault.{} (hk, load_ts, hashdiff, record_source, file_hash, \"row_number\", run_id, {}) \
             SELECT {prefix}hk, {ts}::TIMESTAMPTZ, {prefix}hashdiff, {}, {}, {prefix}\"row_number\", {}, {}",
            ident(&self.satellite),
            names.join(", "),
            literal(&self.source.id),
            literal(&self.unit.file_hash),
            self.unit.run_id,
            values.join(", "),
        )
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
        if let Some(mut appender) = self.stage_appender.take() {
            let start = Instant::now();
            appender
                .flush()
                .map_err(VaultError::db("cannot flush an appender"))?;
            self.timings.add("append", start.elapsed());
        }
        let counts = if self.direct {
            let c = stager.counts;
            LoadCounts {
                rows_read: c.new_rows + c.changed_rows + c.unchanged_rows,
                new_keys: self.hub_keys.iter().copied().max().unwrap_or(0),
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
        meta::record_file(conn, &self.unit, &self.source.id)?;
        if let Some(state) = &self.end_state {
            meta::set_state(
                conn,
                &self.source.id,
                meta::READER_STATE,
                state,
                self.unit.load_ts,
            )?;
        }
        meta::record_load(
            conn,
            &self.unit,
            &self.source.id,
            Some(&self.satellite),
            &counts,
            UnitStatus::Loaded,
            None,
        )?;
        // One statement batch: for small units, each round trip shows.
        let drop = if self.direct {
            String::new()
        } else {
            format!("DROP TABLE temp.{STAGE}")
        };
        self.tx
            .take()
            .expect("a unit is committed once")
            .commit_after(&drop, "the load")?;
        self.timings.add("sql meta and commit", start.elapsed());
        Ok(counts)
    }

    /// Add the keys (hk and business_key) that a hub lacks to each of the source's hubs;
    /// how many each hub gained. `repeated`: a key may come more than once in `keys`.
    fn insert_hub_keys(&mut self, keys: &Keys, repeated: bool) -> Result<Vec<u64>, VaultError> {
        let start = Instant::now();
        let ts = literal(&self.unit.load_ts.to_rfc3339());
        // Only many keys gain from skipping the anti-join into an empty hub.
        let many = match keys {
            Keys::Staged => self.rows_staged,
            Keys::Batches(b) => b.iter().map(|b| b.num_rows() as u64).sum(),
        } > 50_000;
        let mut added = Vec::with_capacity(self.source.tags.len());
        for tag in &self.source.tags {
            let hub = format!("vault.{}", ident(&format!("hub_{tag}")));
            let (from, _feed) = match keys {
                Keys::Staged => (format!("temp.{STAGE}"), None),
                Keys::Batches(batches) => {
                    let mut batches = batches.clone().into_iter();
                    let feed = Feed::register(keys_schema(), Box::new(move || Ok(batches.next())));
                    (feed.sql(), Some(feed))
                }
            };
            let hub_empty = many && table_is_empty(self.conn, &format!("hub_{tag}"))?;
            let select = if hub_empty && !repeated {
                format!("SELECT hk, business_key, ?, {ts}::TIMESTAMPTZ, ?, ? FROM {from}")
            } else {
                format!(
                    "SELECT hk, any_value(business_key), ?, {ts}::TIMESTAMPTZ, ?, ? FROM {from} s \
                     WHERE NOT EXISTS (SELECT 1 FROM {hub} h WHERE h.hk = s.hk) GROUP BY hk"
                )
            };
            let n = self
                .conn
                .execute(
                    &format!("INSERT INTO {hub} {select}"),
                    params![self.source.namespace(), self.source.id, self.unit.run_id],
                )
                .map_err(VaultError::db(format!("cannot add keys to hub `{tag}`")))?;
            added.push(n as u64);
        }
        self.timings.add("sql hubs", start.elapsed());
        Ok(added)
    }

    /// The staged way: SQL picks the rows (a repeated key keeps its last row).
    fn commit_staged(&mut self, stager: &Stager) -> Result<LoadCounts, VaultError> {
        let conn = self.conn;
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
        let new_keys = self
            .insert_hub_keys(&Keys::Staged, stager.repeated)?
            .into_iter()
            .max()
            .unwrap_or(0);
        let start = Instant::now();
        let (insert, insert_from_s) = (self.satellite_insert(""), self.satellite_insert("s."));
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
        // The appender goes first: the rollback (the transaction's own drop) must find
        // nothing of the unit still being written.
        drop(self.stage_appender.take());
        drop(self.tx.take());
    }
}

fn count(conn: &Connection, sql: &str) -> Result<u64, VaultError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .map_err(VaultError::db("cannot count staged rows"))
}

/// Whether `vault.<table>` has no rows (DuckDB answers from table metadata).
fn table_is_empty(conn: &Connection, table: &str) -> Result<bool, VaultError> {
    let sql = format!("SELECT NOT EXISTS (SELECT 1 FROM vault.{})", ident(table));
    conn.query_row(&sql, [], |r| r.get(0))
        .map_err(VaultError::db(format!("cannot read `{table}`")))
}

/// Record a unit that holds no records (an empty JSON array, an API sync that found
/// nothing new): no hub or satellite is touched, but the unit is loaded, so it is skipped
/// next time, and its end state (a sync token) is saved, in one transaction.
pub fn record_empty(
    conn: &Connection,
    source: &str,
    unit: &Unit,
    end_state: Option<&str>,
) -> Result<LoadCounts, VaultError> {
    let tx = Transaction::begin(conn, "recording a unit without records")?;
    meta::record_file(conn, unit, source)?;
    if let Some(state) = end_state {
        meta::set_state(conn, source, meta::READER_STATE, state, unit.load_ts)?;
    }
    let counts = LoadCounts::default();
    meta::record_load(conn, unit, source, None, &counts, UnitStatus::Loaded, None)?;
    tx.commit("recording a unit without records")?;
    Ok(counts)
}
