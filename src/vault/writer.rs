//! Vault stage, writer: one input unit into hubs and a satellite, in one transaction.
//!
//! Two halves. A `Stager` turns typed batches into staged batches (hub key, hashdiff,
//! readable key, position, payload); it holds no connection, so it can run on another
//! thread than the `UnitLoad`, which appends staged batches to a temporary table and, at
//! commit, moves them with set-based SQL into the hubs and the satellite.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use duckdb::arrow::array::{ArrayRef, Int64Array, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{params, Appender, Connection};

use super::ddl::{ident, literal};
use super::hash::{hex16, Encoder, RecipeHasher};
use crate::defs::{Definitions, KeyCase, Source};
use crate::error::VaultError;
use crate::timings::Timings;
use crate::validate::Contract;

const STAGE: &str = "ingestor_stage";
const DELTA: &str = "ingestor_delta";

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

/// The staging table's Arrow schema: hk, hashdiff, business_key, row_number, payload.
fn stage_schema(contract: &Contract) -> SchemaRef {
    let mut fields = vec![
        Field::new("hk", DataType::Utf8, false),
        Field::new("hashdiff", DataType::Utf8, false),
        Field::new("business_key", DataType::Utf8, true),
        Field::new("row_number", DataType::Int64, false),
    ];
    for c in &contract.columns {
        fields.push(Field::new(&c.name, c.ty.arrow(), true));
    }
    Arc::new(Schema::new(fields))
}

/// Computes keys and hashdiffs of typed batches. Holds no connection.
pub struct Stager {
    hasher: RecipeHasher,
    namespace: String,
    upper: bool,
    key: Option<Vec<usize>>,
    schema: SchemaRef,
    /// Content keys: occurrences of each payload in this unit.
    occurrences: HashMap<[u8; 16], u32>,
    /// Primary keys: the first 8 bytes of every key seen, to notice a key given twice.
    seen: HashSet<u64>,
    /// Whether some key (prefix) came twice: the commit then keeps each key's last row.
    repeated: bool,
    /// Time spent hashing.
    pub timings: Timings,
}

impl Stager {
    /// A stager for one unit of `source` under `contract`.
    pub fn new(source: &Source, contract: &Contract, hasher: &RecipeHasher) -> Self {
        Stager {
            hasher: hasher.clone(),
            namespace: source.namespace().to_string(),
            upper: source.key_case == KeyCase::Upper,
            key: contract.key.clone(),
            schema: stage_schema(contract),
            occurrences: HashMap::new(),
            seen: HashSet::new(),
            repeated: false,
            timings: Timings::default(),
        }
    }

    /// Hash one typed batch into a staged batch. `rows` is each row's position.
    pub fn stage(&mut self, typed: &RecordBatch, rows: &[i64]) -> Result<RecordBatch, VaultError> {
        let start = Instant::now();
        let n = typed.num_rows();
        let mut hks = StringBuilder::with_capacity(n, n * 32);
        let mut diffs = StringBuilder::with_capacity(n, n * 32);
        let mut bks = StringBuilder::with_capacity(n, n * 16);
        let mut payload = Encoder::default();
        let mut key = Encoder::default();
        let mut places: Vec<Option<std::ops::Range<usize>>> =
            Vec::with_capacity(typed.num_columns());
        let mut readable: Vec<u8> = Vec::new();
        let mut hex = [0u8; 32];
        let namespace = {
            let mut e = Encoder::default();
            e.push(Some(&self.namespace));
            e.bytes().to_vec()
        };
        for row in 0..n {
            payload.clear();
            places.clear();
            for col in typed.columns() {
                places.push(payload.push_cell(col.as_ref(), row));
            }
            let hashdiff = self.hasher.hash16(payload.bytes());
            let text = |place: &Option<std::ops::Range<usize>>| match place {
                Some(r) => &payload.bytes()[r.clone()],
                None => &b""[..],
            };
            key.clear();
            key.extend(&namespace);
            readable.clear();
            match &self.key {
                Some(key_cols) => {
                    for (i, &c) in key_cols.iter().enumerate() {
                        // Key columns are never NULL (the contract refuses that).
                        let part = text(&places[c]);
                        if i > 0 {
                            readable.push(b'|');
                        }
                        if self.upper {
                            let upper = String::from_utf8_lossy(part).to_uppercase();
                            key.push(Some(&upper));
                            readable.extend_from_slice(upper.as_bytes());
                        } else {
                            key.push_bytes(part);
                            readable.extend_from_slice(part);
                        }
                    }
                }
                None => {
                    // Content key: every payload value plus the occurrence among identical
                    // rows of this unit, so identical rows stay distinct and reloads match.
                    let seen = self.occurrences.entry(hashdiff).or_insert(0);
                    *seen += 1;
                    key.extend(payload.bytes());
                    key.push(Some(&seen.to_string()));
                    for (i, place) in places.iter().enumerate() {
                        if i > 0 {
                            readable.push(b'|');
                        }
                        readable.extend_from_slice(text(place));
                    }
                    readable.extend_from_slice(format!(" #{seen}").as_bytes());
                }
            }
            let hk = self.hasher.hash16(key.bytes());
            if self.key.is_some() {
                let prefix = u64::from_le_bytes(hk[..8].try_into().expect("8 bytes"));
                self.repeated |= !self.seen.insert(prefix);
            }
            hex16(&hk, &mut hex);
            hks.append_value(std::str::from_utf8(&hex).expect("hex is ASCII"));
            hex16(&hashdiff, &mut hex);
            diffs.append_value(std::str::from_utf8(&hex).expect("hex is ASCII"));
            bks.append_value(std::str::from_utf8(&readable).expect("canonical text is UTF-8"));
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(hks.finish()),
            Arc::new(diffs.finish()),
            Arc::new(bks.finish()),
            Arc::new(Int64Array::from(rows.to_vec())),
        ];
        arrays.extend(typed.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| VaultError::Refused(format!("cannot build the staging batch: {e}")))?;
        self.timings.add("hash rows", start.elapsed());
        Ok(batch)
    }
}

/// An open load of one unit. Dropping it without `commit` rolls everything back.
pub struct UnitLoad<'c> {
    conn: &'c Connection,
    appender: Option<Appender<'c>>,
    open: bool,
    source: Source,
    unit: Unit,
    contract: Contract,
    satellite: String,
    /// Whether the satellite had no rows when the unit began.
    satellite_empty: bool,
    load_ts: DateTime<Utc>,
    rows_read: u64,
    /// Time spent per phase in this unit.
    pub timings: Timings,
}

impl<'c> UnitLoad<'c> {
    /// Begin the unit's transaction: find or create the satellite, create the staging table.
    pub fn begin(
        conn: &'c Connection,
        defs: &Definitions,
        source: &Source,
        unit: Unit,
        contract: Contract,
    ) -> Result<Self, VaultError> {
        let start = Instant::now();
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(VaultError::db("cannot begin the load transaction"))?;
        let load_ts = Utc::now();
        let satellite = super::ddl::satellite_for(conn, defs, &source.id, &contract, load_ts)?;
        let satellite_empty = table_is_empty(conn, &satellite)?;
        let mut cols = String::from(
            "hk VARCHAR, hashdiff VARCHAR, business_key VARCHAR, \"row_number\" BIGINT",
        );
        for c in &contract.columns {
            cols.push_str(&format!(", {} {}", ident(&c.name), c.ty.sql()));
        }
        conn.execute_batch(&format!("CREATE TEMP TABLE {STAGE} ({cols})"))
            .map_err(VaultError::db("cannot create the staging table"))?;
        let appender = conn
            .appender_to_catalog_and_db(STAGE, "temp", "main")
            .map_err(VaultError::db("cannot open the staging appender"))?;
        let mut timings = Timings::default();
        timings.add("begin", start.elapsed());
        Ok(UnitLoad {
            conn,
            appender: Some(appender),
            open: true,
            source: source.clone(),
            unit,
            contract,
            satellite,
            satellite_empty,
            load_ts,
            rows_read: 0,
            timings,
        })
    }

    /// The satellite this unit loads into.
    pub fn satellite(&self) -> &str {
        &self.satellite
    }

    /// Append one staged batch (from a `Stager`) to the staging table.
    pub fn append(&mut self, staged: RecordBatch) -> Result<(), VaultError> {
        let start = Instant::now();
        self.rows_read += staged.num_rows() as u64;
        self.appender
            .as_mut()
            .expect("appender is open until commit")
            .append_record_batch(staged)
            .map_err(VaultError::db("cannot append to the staging table"))?;
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
        let mut appender = self.appender.take().expect("appender is open until commit");
        appender
            .flush()
            .map_err(VaultError::db("cannot flush the staging appender"))?;
        drop(appender);
        self.timings.add("append", start.elapsed());
        let conn = self.conn;
        let ts = literal(&self.load_ts.to_rfc3339());
        let sat = format!("vault.{}", ident(&self.satellite));
        let context = format!("cannot load into `{}`", self.satellite);
        let sql = |s: &str| conn.execute(s, []).map_err(VaultError::db(context.clone()));
        // A key given twice in the unit keeps its last row.
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
            self.rows_read
        };

        let start = Instant::now();
        let mut new_keys = 0u64;
        for tag in &self.source.tags {
            let hub = format!("vault.{}", ident(&format!("hub_{tag}")));
            let hub_empty = table_is_empty(conn, &format!("hub_{tag}"))?;
            let select = if hub_empty && !stager.repeated {
                format!("SELECT hk, business_key, ?, {ts}::TIMESTAMPTZ, ?, ? FROM temp.{STAGE}")
            } else {
                format!(
                    "SELECT hk, any_value(business_key), ?, {ts}::TIMESTAMPTZ, ?, ? FROM temp.{STAGE} s \
                     WHERE NOT EXISTS (SELECT 1 FROM {hub} h WHERE h.hk = s.hk) GROUP BY hk"
                )
            };
            let added = conn
                .execute(
                    &format!("INSERT INTO {hub} {select}"),
                    params![self.source.namespace(), self.source.id, self.unit.run_id],
                )
                .map_err(VaultError::db(format!("cannot add keys to hub `{tag}`")))?;
            new_keys = new_keys.max(added as u64);
        }
        self.timings.add("sql hubs", start.elapsed());

        let start = Instant::now();
        let payload: Vec<String> = self
            .contract
            .columns
            .iter()
            .map(|c| ident(&c.name))
            .collect();
        let payload = payload.join(", ");
        let constants = format!(
            "{ts}::TIMESTAMPTZ, hashdiff, {}, {}, \"row_number\", {}",
            literal(&self.source.id),
            literal(&self.unit.file_hash),
            self.unit.run_id
        );
        let insert = format!(
            "INSERT INTO {sat} (hk, load_ts, hashdiff, record_source, file_hash, \"row_number\", run_id, {payload}) SELECT hk, {constants}, {payload}"
        );
        let (new_rows, changed_rows) = if self.satellite_empty {
            // Every key is new to an empty satellite: no comparison needed.
            let n = sql(&format!("{insert} FROM {rows}"))?;
            (n as u64, 0)
        } else {
            // Rows whose key is new to the satellite, or whose hashdiff differs from the
            // latest row of that key.
            sql(&format!(
                "CREATE TEMP TABLE {DELTA} AS \
                 SELECT s.*, l.hk IS NULL AS is_new FROM {rows} s \
                 LEFT JOIN (SELECT hk, arg_max(hashdiff, load_ts) AS hashdiff FROM {sat} \
                            WHERE hk IN (SELECT hk FROM temp.{STAGE}) GROUP BY hk) l \
                   ON l.hk = s.hk \
                 WHERE l.hk IS NULL OR l.hashdiff <> s.hashdiff"
            ))?;
            sql(&format!("{insert} FROM temp.{DELTA}"))?;
            let (new_rows, changed_rows): (i64, i64) = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new) \
                         FROM temp.{DELTA}"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(VaultError::db("cannot count the loaded rows"))?;
            sql(&format!("DROP TABLE temp.{DELTA}"))?;
            (new_rows as u64, changed_rows as u64)
        };
        self.timings.add("sql satellite", start.elapsed());

        let start = Instant::now();
        let counts = LoadCounts {
            rows_read: self.rows_read,
            new_keys,
            new_rows,
            changed_rows,
            unchanged_rows: distinct - new_rows - changed_rows,
            duplicate_keys: self.rows_read - distinct,
        };
        let updated = conn
            .execute(
                &format!("UPDATE meta.files SET last_seen = {ts}::TIMESTAMPTZ WHERE file_hash = ? AND source = ?"),
                params![self.unit.file_hash, self.source.id],
            )
            .map_err(VaultError::db("cannot update the lake manifest"))?;
        if updated == 0 {
            conn.execute(
                &format!("INSERT INTO meta.files VALUES (?, ?, ?, ?, {ts}::TIMESTAMPTZ, {ts}::TIMESTAMPTZ)"),
                params![self.unit.file_hash, self.source.id, self.unit.path, self.unit.size as i64],
            )
            .map_err(VaultError::db("cannot write the lake manifest"))?;
        }
        record_load(
            conn,
            &self.unit,
            &self.source.id,
            Some(&self.satellite),
            &counts,
            "loaded",
            None,
        )?;
        sql(&format!("DROP TABLE temp.{STAGE}"))?;
        conn.execute_batch("COMMIT")
            .map_err(VaultError::db("cannot commit the load"))?;
        self.open = false;
        self.timings.add("sql meta and commit", start.elapsed());
        Ok(counts)
    }
}

impl Drop for UnitLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            drop(self.appender.take());
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

/// Whether this source already loaded a file with these bytes.
pub fn already_loaded(
    conn: &Connection,
    source: &str,
    file_hash: &str,
) -> Result<bool, VaultError> {
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM meta.loads WHERE source = ? AND file_hash = ? AND status = 'loaded'",
            params![source, file_hash],
            |r| r.get(0),
        )
        .map_err(VaultError::db("cannot read meta.loads"))?;
    Ok(n > 0)
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
