//! Vault stage, writer: one input unit into hubs and a satellite, in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use duckdb::arrow::array::{ArrayRef, Int64Array, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{params, Appender, Connection};

use super::ddl::{ident, literal};
use super::hash::{canonical_cell, Encoder, RecipeHasher};
use crate::defs::{Definitions, KeyCase, Source};
use crate::error::VaultError;
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

/// An open load of one unit. Dropping it without `commit` rolls everything back.
pub struct UnitLoad<'c> {
    conn: &'c Connection,
    appender: Option<Appender<'c>>,
    open: bool,
    source: Source,
    unit: Unit,
    contract: Contract,
    satellite: String,
    load_ts: DateTime<Utc>,
    hasher: RecipeHasher,
    stage_schema: SchemaRef,
    occurrences: HashMap<String, u32>,
    rows_read: u64,
}

impl<'c> UnitLoad<'c> {
    /// Begin the unit's transaction: find or create the satellite, create the staging table.
    pub fn begin(
        conn: &'c Connection,
        defs: &Definitions,
        source: &Source,
        unit: Unit,
        contract: Contract,
        hasher: &RecipeHasher,
    ) -> Result<Self, VaultError> {
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(VaultError::db("cannot begin the load transaction"))?;
        let mut load = UnitLoad {
            conn,
            appender: None,
            open: true,
            source: source.clone(),
            unit,
            satellite: String::new(),
            load_ts: Utc::now(),
            hasher: hasher.clone(),
            stage_schema: Arc::new(Schema::empty()),
            occurrences: HashMap::new(),
            rows_read: 0,
            contract,
        };
        load.satellite =
            super::ddl::satellite_for(conn, defs, &source.id, &load.contract, load.load_ts)?;
        let mut fields = vec![
            Field::new("hk", DataType::Utf8, false),
            Field::new("hashdiff", DataType::Utf8, false),
            Field::new("business_key", DataType::Utf8, true),
            Field::new("row_number", DataType::Int64, false),
        ];
        let mut cols = String::from(
            "hk VARCHAR, hashdiff VARCHAR, business_key VARCHAR, \"row_number\" BIGINT",
        );
        for c in &load.contract.columns {
            fields.push(Field::new(&c.name, c.ty.arrow(), true));
            cols.push_str(&format!(", {} {}", ident(&c.name), c.ty.sql()));
        }
        load.stage_schema = Arc::new(Schema::new(fields));
        conn.execute_batch(&format!("CREATE TEMP TABLE {STAGE} ({cols})"))
            .map_err(VaultError::db("cannot create the staging table"))?;
        load.appender = Some(
            conn.appender_to_catalog_and_db(STAGE, "temp", "main")
                .map_err(VaultError::db("cannot open the staging appender"))?,
        );
        Ok(load)
    }

    /// The satellite this unit loads into.
    pub fn satellite(&self) -> &str {
        &self.satellite
    }

    /// Hash and stage one typed batch. `rows` is each row's position in the file.
    pub fn append(&mut self, typed: &RecordBatch, rows: &[i64]) -> Result<(), VaultError> {
        let n = typed.num_rows();
        let mut hks = StringBuilder::with_capacity(n, n * 32);
        let mut diffs = StringBuilder::with_capacity(n, n * 32);
        let mut bks = StringBuilder::with_capacity(n, n * 16);
        let mut payload = Encoder::default();
        let mut key = Encoder::default();
        let mut cell = String::new();
        let mut readable = String::new();
        let namespace = self.source.namespace().to_string();
        let upper = self.source.key_case == KeyCase::Upper;
        for row in 0..n {
            payload.clear();
            for col in typed.columns() {
                let present = canonical_cell(col.as_ref(), row, &mut cell);
                payload.push(present.then_some(cell.as_str()));
            }
            let hashdiff = self.hasher.hex(payload.bytes());
            key.clear();
            key.push(Some(&namespace));
            readable.clear();
            match &self.contract.key {
                Some(key_cols) => {
                    for (i, &c) in key_cols.iter().enumerate() {
                        canonical_cell(typed.column(c).as_ref(), row, &mut cell);
                        if upper {
                            cell = cell.to_uppercase();
                        }
                        key.push(Some(&cell));
                        if i > 0 {
                            readable.push('|');
                        }
                        readable.push_str(&cell);
                    }
                }
                None => {
                    // Content key: every payload value plus the occurrence among identical
                    // rows of this unit, so identical rows stay distinct and reloads match.
                    let seen = self.occurrences.entry(hashdiff.clone()).or_insert(0);
                    *seen += 1;
                    for (i, col) in typed.columns().iter().enumerate() {
                        let present = canonical_cell(col.as_ref(), row, &mut cell);
                        key.push(present.then_some(cell.as_str()));
                        if i > 0 {
                            readable.push('|');
                        }
                        readable.push_str(&cell);
                    }
                    let occurrence = seen.to_string();
                    key.push(Some(&occurrence));
                    readable.push_str(" #");
                    readable.push_str(&occurrence);
                }
            }
            hks.append_value(self.hasher.hex(key.bytes()));
            diffs.append_value(hashdiff);
            bks.append_value(&readable);
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(hks.finish()),
            Arc::new(diffs.finish()),
            Arc::new(bks.finish()),
            Arc::new(Int64Array::from(rows.to_vec())),
        ];
        arrays.extend(typed.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.stage_schema.clone(), arrays)
            .map_err(|e| VaultError::Refused(format!("cannot build the staging batch: {e}")))?;
        self.appender
            .as_mut()
            .expect("appender is open until commit")
            .append_record_batch(batch)
            .map_err(VaultError::db("cannot append to the staging table"))?;
        self.rows_read += n as u64;
        Ok(())
    }

    /// Move staged rows into the hubs and the satellite, record the unit, and commit.
    pub fn commit(mut self) -> Result<LoadCounts, VaultError> {
        let mut appender = self.appender.take().expect("appender is open until commit");
        appender
            .flush()
            .map_err(VaultError::db("cannot flush the staging appender"))?;
        drop(appender);
        let conn = self.conn;
        let ts = literal(&self.load_ts.to_rfc3339());
        let sat = format!("vault.{}", ident(&self.satellite));
        let sql = |s: &str| {
            conn.execute_batch(s).map_err(VaultError::db(format!(
                "cannot load into `{}`",
                self.satellite
            )))
        };
        // Rows whose key is new to the satellite, or whose hashdiff differs from the
        // latest row of that key. A key repeated within the unit keeps its last row.
        sql(&format!(
            "CREATE TEMP TABLE {DELTA} AS \
             SELECT s.*, l.hk IS NULL AS is_new FROM \
               (SELECT * FROM temp.{STAGE} \
                QUALIFY row_number() OVER (PARTITION BY hk ORDER BY \"row_number\" DESC) = 1) s \
             LEFT JOIN (SELECT hk, arg_max(hashdiff, load_ts) AS hashdiff FROM {sat} \
                        WHERE hk IN (SELECT hk FROM temp.{STAGE}) GROUP BY hk) l \
               ON l.hk = s.hk \
             WHERE l.hk IS NULL OR l.hashdiff <> s.hashdiff"
        ))?;
        let mut new_keys = 0u64;
        for tag in &self.source.tags {
            let hub = format!("vault.{}", ident(&format!("hub_{tag}")));
            let added = conn
                .execute(
                    &format!(
                        "INSERT INTO {hub} SELECT hk, any_value(business_key), ?, {ts}::TIMESTAMPTZ, ?, ? \
                         FROM temp.{STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {hub} h WHERE h.hk = s.hk) \
                         GROUP BY hk"
                    ),
                    params![self.source.namespace(), self.source.id, self.unit.run_id],
                )
                .map_err(VaultError::db(format!("cannot add keys to hub `{tag}`")))?;
            new_keys = new_keys.max(added as u64);
        }
        let payload: Vec<String> = self
            .contract
            .columns
            .iter()
            .map(|c| ident(&c.name))
            .collect();
        let payload = payload.join(", ");
        conn.execute(
            &format!(
                "INSERT INTO {sat} (hk, load_ts, hashdiff, record_source, file_hash, \"row_number\", run_id, {payload}) \
                 SELECT hk, {ts}::TIMESTAMPTZ, hashdiff, ?, ?, \"row_number\", ?, {payload} FROM temp.{DELTA}"
            ),
            params![self.source.id, self.unit.file_hash, self.unit.run_id],
        )
        .map_err(VaultError::db(format!("cannot add rows to `{}`", self.satellite)))?;
        let (distinct, new_rows, changed_rows): (i64, i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT (SELECT count(DISTINCT hk) FROM temp.{STAGE}), \
                            count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new) \
                     FROM temp.{DELTA}"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(VaultError::db("cannot count the loaded rows"))?;
        let counts = LoadCounts {
            rows_read: self.rows_read,
            new_keys,
            new_rows: new_rows as u64,
            changed_rows: changed_rows as u64,
            unchanged_rows: (distinct - new_rows - changed_rows) as u64,
            duplicate_keys: self.rows_read - distinct as u64,
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
        sql(&format!("DROP TABLE temp.{STAGE}; DROP TABLE temp.{DELTA}"))?;
        conn.execute_batch("COMMIT")
            .map_err(VaultError::db("cannot commit the load"))?;
        self.open = false;
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
