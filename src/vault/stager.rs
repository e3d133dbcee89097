//! Vault stage, hashing rows: typed batches in, batches for DuckDB out.
//!
//! A `Stager` holds no connection, so it runs on its own thread while the `UnitLoad`
//! writes to DuckDB. It works in one of two ways:
//!
//! - **direct**: rows go straight into the satellite. The satellite's latest hashdiff per
//!   key is known up front, so only new and changed rows are emitted (hk, hashdiff,
//!   row_number and the payload; the unit's constants are written in SQL); their keys
//!   are offered to the hubs. Content keys never repeat
//!   within a unit; a primary key that does makes the stager answer `Repeat` (at once
//!   for a key the satellite has, after the last batch for a new one: `finish`), and
//!   the unit is loaded again the staged way.
//! - **staged**: every row goes to a staging table with its key, hashdiff and position,
//!   and SQL decides at commit, keeping a repeated key's last row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use duckdb::arrow::array::{
    Array, ArrayRef, FixedSizeBinaryBuilder, Int64Array, StringBuilder, UInt32Array,
};
use duckdb::arrow::compute::take;
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use super::hash::{Encoder, RecipeHasher};
use super::latest::{prefix, Found, Latest, Seen};
use crate::canonical::push_digits;
use crate::defs::{KeyCase, Source};
use crate::error::VaultError;
use crate::timings::Timings;
use crate::validate::Contract;

/// What one staged batch turned into.
#[derive(Debug)]
pub enum Staged {
    /// Staged way: rows for the staging table.
    Rows(RecordBatch),
    /// Direct way: rows for the satellite and keys for the hubs, either possibly empty.
    Direct {
        satellite: Option<RecordBatch>,
        keys: Option<RecordBatch>,
    },
    /// Direct way, and a primary key came twice: load the unit the staged way.
    Repeat,
}

/// Counts the direct way keeps as it goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectCounts {
    pub new_rows: u64,
    pub changed_rows: u64,
    pub unchanged_rows: u64,
}

enum Mode {
    Staged,
    Direct {
        latest: Latest,
        /// Whether emitted rows update `latest` (only when a later unit will use it).
        keep: bool,
        satellite: SchemaRef,
        keys: SchemaRef,
    },
}

/// Whether a row is new to the satellite, changed, or the same as its latest row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    New,
    Changed,
    Unchanged,
}

/// Computes keys and hashdiffs of typed batches.
pub struct Stager {
    hasher: RecipeHasher,
    namespace: Vec<u8>,
    upper: bool,
    key: Option<Vec<usize>>,
    mode: Mode,
    /// Staged way: the staging table's schema.
    stage: SchemaRef,
    /// Content keys: occurrences of each payload in this unit.
    occurrences: HashMap<[u8; 16], u32>,
    /// Primary keys: the first 8 bytes of every key seen, to notice a key given twice.
    seen: Seen,
    /// Whether some key (prefix) came twice.
    pub repeated: bool,
    /// Direct way: rows new, changed and unchanged so far.
    pub counts: DirectCounts,
    /// Time spent hashing.
    pub timings: Timings,
}

/// A 16-byte key as DuckDB's UUID: the same bytes, written as hex with dashes.
pub fn uuid_field(name: &str) -> Field {
    Field::new(name, DataType::FixedSizeBinary(16), false).with_metadata(
        [("ARROW:extension:name".to_string(), "arrow.uuid".to_string())]
            .into_iter()
            .collect::<std::collections::HashMap<String, String>>(),
    )
}

/// The staging table's columns: hk, hashdiff, business_key, row_number, payload.
pub fn stage_schema(contract: &Contract) -> SchemaRef {
    let mut fields = stage_schema_fields();
    fields.extend(payload_fields(contract));
    Arc::new(Schema::new(fields))
}

/// The direct way's rows for the satellite: hk, hashdiff, row_number, payload. The
/// columns every row of a unit shares (load_ts, record_source, ...) are written in SQL.
pub fn satellite_schema(contract: &Contract) -> SchemaRef {
    let mut fields = vec![
        uuid_field("hk"),
        uuid_field("hashdiff"),
        Field::new("row_number", DataType::Int64, false),
    ];
    fields.extend(payload_fields(contract));
    Arc::new(Schema::new(fields))
}

/// The hub candidates' columns: hk, business_key.
pub fn keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        uuid_field("hk"),
        Field::new("business_key", DataType::Utf8, true),
    ]))
}

fn payload_fields(contract: &Contract) -> Vec<Field> {
    contract
        .columns
        .iter()
        .map(|c| Field::new(&c.name, c.ty.arrow(), true))
        .collect()
}

impl Stager {
    /// A stager for the staged way.
    pub fn staged(source: &Source, contract: &Contract, hasher: &RecipeHasher) -> Self {
        Self::new(source, contract, hasher, Mode::Staged)
    }

    /// A stager for the direct way. `latest` is the satellite's latest hashdiff per key
    /// (empty for an empty satellite); emitted rows update it, so after a committed unit
    /// it describes the satellite again and can serve the next unit (`into_latest`).
    pub fn direct(
        source: &Source,
        contract: &Contract,
        hasher: &RecipeHasher,
        latest: Latest,
        keep: bool,
    ) -> Self {
        let mode = Mode::Direct {
            latest,
            keep,
            satellite: satellite_schema(contract),
            keys: keys_schema(),
        };
        Self::new(source, contract, hasher, mode)
    }

    fn new(source: &Source, contract: &Contract, hasher: &RecipeHasher, mode: Mode) -> Self {
        let mut namespace = Encoder::default();
        namespace.push(Some(source.namespace()));
        let seen = match &mode {
            Mode::Direct { latest, .. } => Seen::for_latest(latest),
            Mode::Staged => Seen::default(),
        };
        Stager {
            hasher: hasher.clone(),
            namespace: namespace.bytes().to_vec(),
            upper: source.key_case == KeyCase::Upper,
            key: contract.key.clone(),
            mode,
            stage: stage_schema(contract),
            occurrences: HashMap::new(),
            seen,
            repeated: false,
            counts: DirectCounts::default(),
            timings: Timings::default(),
        }
    }

    /// The latest hashdiffs after this unit (direct way, when kept), for the next unit.
    pub fn into_latest(self) -> Option<Latest> {
        match self.mode {
            Mode::Direct {
                latest, keep: true, ..
            } => Some(latest.compact()),
            _ => None,
        }
    }

    /// Whether rows go straight into the satellite.
    pub fn is_direct(&self) -> bool {
        matches!(self.mode, Mode::Direct { .. })
    }

    /// After the unit's last batch: whether a primary key came twice in it. Keys new to
    /// the satellite are only compared here, sorted, so the direct way learns of such a
    /// repeat at the end and the unit is loaded again the staged way.
    pub fn finish(&mut self) -> bool {
        if self.key.is_some() && !self.repeated && self.seen.others_repeat() {
            self.repeated = true;
        }
        self.repeated
    }

    /// Hash one typed batch. `rows` is each row's position in the input.
    pub fn stage(&mut self, typed: &RecordBatch, rows: &[i64]) -> Result<Staged, VaultError> {
        let start = Instant::now();
        let staged = self.stage_inner(typed, rows);
        self.timings.add("hash rows", start.elapsed());
        staged
    }

    fn stage_inner(&mut self, typed: &RecordBatch, rows: &[i64]) -> Result<Staged, VaultError> {
        let n = typed.num_rows();
        let direct = matches!(self.mode, Mode::Direct { .. });
        // Readable keys for every row when most rows will be new; else only for new rows.
        let all_readable = match &self.mode {
            Mode::Staged => true,
            Mode::Direct { latest, .. } => latest.is_empty(),
        };
        let hashed = self.hash_rows(typed, all_readable);
        let found = self.find_latest(&hashed.rows);
        // Sized for every row only when most rows will be emitted: the direct way keeps
        // the readable keys of a statement's rows in memory, and a builder's spare room
        // stays with its batch.
        let cap = if all_readable { n } else { 0 };
        let mut hks = FixedSizeBinaryBuilder::with_capacity(cap, 16);
        let mut diffs = FixedSizeBinaryBuilder::with_capacity(cap, 16);
        let mut bks = StringBuilder::with_capacity(cap, cap * 16);
        // Direct way: which rows go to the satellite; their keys go to the hubs.
        let mut emitted: Vec<u32> = Vec::new();
        let mut new_hks = FixedSizeBinaryBuilder::new(16);
        let mut readable: Vec<u8> = Vec::new();
        let append = |b: &mut FixedSizeBinaryBuilder, v: &[u8; 16]| {
            b.append_value(v)
                .map_err(|e| VaultError::Refused(format!("cannot stage a key: {e}")))
        };
        for (row, (h, &found)) in hashed.rows.iter().zip(&found).enumerate() {
            let (key, diff) = (prefix(&h.hk), prefix(&h.hashdiff));
            if self.key.is_some() && self.seen.note(key, found) {
                self.repeated = true;
                if direct {
                    return Ok(Staged::Repeat);
                }
            }
            let status = match &mut self.mode {
                Mode::Direct { latest, keep, .. } => {
                    let status = match found.hashdiff() {
                        Some(d) if d == diff => Status::Unchanged,
                        Some(_) => Status::Changed,
                        None => Status::New,
                    };
                    if *keep && status != Status::Unchanged {
                        latest.set(found, key, diff);
                    }
                    status
                }
                Mode::Staged => Status::New,
            };
            if direct {
                match status {
                    Status::Unchanged => {
                        self.counts.unchanged_rows += 1;
                        continue;
                    }
                    Status::Changed => self.counts.changed_rows += 1,
                    Status::New => self.counts.new_rows += 1,
                }
                emitted.push(row as u32);
            }
            append(&mut hks, &h.hk)?;
            // Every key that reaches the satellite is offered to the hubs (they keep the
            // ones they lack): a tag added to the source since needs its changed keys too.
            if direct {
                append(&mut new_hks, &h.hk)?;
            }
            append(&mut diffs, &h.hashdiff)?;
            {
                readable.clear();
                match hashed.readable(row) {
                    Some(text) => readable.extend_from_slice(text),
                    None => self.readable_into(typed, row, &mut readable),
                }
                if self.key.is_none() {
                    // A content key's readable form ends with its occurrence.
                    readable.extend_from_slice(b" #");
                    push_digits(&mut readable, u128::from(h.occurrence));
                }
                bks.append_value(std::str::from_utf8(&readable).expect("canonical text is UTF-8"));
            }
        }
        let error = |e: duckdb::arrow::error::ArrowError| {
            VaultError::Refused(format!("cannot build a batch for DuckDB: {e}"))
        };
        match &self.mode {
            Mode::Staged => {
                let mut arrays: Vec<ArrayRef> = vec![
                    Arc::new(hks.finish()),
                    Arc::new(diffs.finish()),
                    Arc::new(bks.finish()),
                    Arc::new(Int64Array::from(rows.to_vec())),
                ];
                arrays.extend(typed.columns().iter().cloned());
                RecordBatch::try_new(self.stage.clone(), arrays)
                    .map(Staged::Rows)
                    .map_err(error)
            }
            Mode::Direct {
                satellite, keys, ..
            } => {
                let m = emitted.len();
                let satellite = if m == 0 {
                    None
                } else {
                    let all = m == n;
                    let indices = UInt32Array::from(emitted);
                    let pick = |a: &ArrayRef| -> Result<ArrayRef, VaultError> {
                        if all {
                            Ok(a.clone())
                        } else {
                            take(a.as_ref(), &indices, None).map_err(error)
                        }
                    };
                    let positions: ArrayRef = Arc::new(Int64Array::from(rows.to_vec()));
                    let mut arrays: Vec<ArrayRef> = vec![
                        Arc::new(hks.finish()),
                        Arc::new(diffs.finish()),
                        pick(&positions)?,
                    ];
                    for col in typed.columns() {
                        arrays.push(pick(col)?);
                    }
                    Some(RecordBatch::try_new(satellite.clone(), arrays).map_err(error)?)
                };
                let new_keys = new_hks.finish();
                let keys = if new_keys.is_empty() {
                    None
                } else {
                    let arrays: Vec<ArrayRef> = vec![Arc::new(new_keys), Arc::new(bks.finish())];
                    Some(RecordBatch::try_new(keys.clone(), arrays).map_err(error)?)
                };
                Ok(Staged::Direct { satellite, keys })
            }
        }
    }
}

/// What the parallel pass computes for one row.
#[derive(Debug, Clone, Copy, Default)]
struct RowHash {
    hashdiff: [u8; 16],
    hk: [u8; 16],
    /// Content keys: the row's occurrence among identical rows of the unit.
    occurrence: u32,
}

/// The hashes of a batch, and the readable keys when they were asked for.
struct Hashed {
    rows: Vec<RowHash>,
    /// The readable keys' text, one after another, and where each ends.
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Hashed {
    fn readable(&self, row: usize) -> Option<&[u8]> {
        if self.ends.is_empty() {
            return None;
        }
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        Some(&self.text[start..self.ends[row]])
    }
}

impl Stager {
    /// Where each row's key is in the satellite's latest hashdiffs, on every core.
    fn find_latest(&self, rows: &[RowHash]) -> Vec<Found> {
        match &self.mode {
            Mode::Direct { latest, .. } if !latest.is_empty() => {
                let chunk = rows.len().div_ceil(rayon::current_num_threads().max(1));
                rows.par_chunks(chunk.max(1024))
                    .flat_map_iter(|part| part.iter().map(|h| latest.find(prefix(&h.hk))))
                    .collect()
            }
            _ => vec![Found::No; rows.len()],
        }
    }

    /// Hash every row of a batch, on every core. A primary key is hashed with its row; a
    /// content key needs the row's occurrence among identical rows first, which is counted
    /// in order, then hashed on every core again.
    fn hash_rows(&mut self, typed: &RecordBatch, readable: bool) -> Hashed {
        let n = typed.num_rows();
        let parts = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil(parts).max(1024);
        let ranges: Vec<std::ops::Range<usize>> = (0..n)
            .step_by(chunk)
            .map(|s| s..(s + chunk).min(n))
            .collect();
        let this = &*self;
        let pieces: Vec<(Vec<RowHash>, Vec<u8>, Vec<usize>)> = ranges
            .par_iter()
            .map(|range| this.hash_range(typed, range.clone(), readable))
            .collect();
        let mut hashed = Hashed {
            rows: Vec::with_capacity(n),
            text: Vec::new(),
            ends: Vec::new(),
        };
        for (rows, text, ends) in pieces {
            let base = hashed.text.len();
            hashed.rows.extend(rows);
            hashed.text.extend(text);
            hashed.ends.extend(ends.into_iter().map(|e| e + base));
        }
        if self.key.is_none() {
            for h in hashed.rows.iter_mut() {
                let seen = self.occurrences.entry(h.hashdiff).or_insert(0);
                *seen += 1;
                h.occurrence = *seen;
            }
            let this = &*self;
            let rows = &mut hashed.rows;
            rows.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, part)| this.content_keys(typed, i * chunk, part));
        }
        hashed
    }

    /// Hashdiffs (and primary keys, and readable keys when asked) of a range of rows.
    fn hash_range(
        &self,
        typed: &RecordBatch,
        range: std::ops::Range<usize>,
        readable: bool,
    ) -> (Vec<RowHash>, Vec<u8>, Vec<usize>) {
        let mut payload = Encoder::default();
        let mut key = Encoder::default();
        let mut places: Vec<Option<std::ops::Range<usize>>> = Vec::new();
        let mut out = Vec::with_capacity(range.len());
        let mut text = Vec::new();
        let mut ends = Vec::new();
        for row in range {
            payload.clear();
            places.clear();
            for col in typed.columns() {
                places.push(payload.push_cell(col.as_ref(), row));
            }
            let mut h = RowHash {
                hashdiff: self.hasher.hash16(payload.bytes()),
                ..RowHash::default()
            };
            if let Some(key_cols) = &self.key {
                key.clear();
                key.extend(&self.namespace);
                for &c in key_cols {
                    // Key columns are never NULL (the contract refuses that).
                    let part = cell_text(&payload, &places[c]);
                    if self.upper {
                        key.push(Some(&String::from_utf8_lossy(part).to_uppercase()));
                    } else {
                        key.push_bytes(part);
                    }
                }
                h.hk = self.hasher.hash16(key.bytes());
            }
            if readable {
                self.join_readable(&payload, &places, &mut text);
                ends.push(text.len());
            }
            out.push(h);
        }
        (out, text, ends)
    }

    /// Content keys of rows whose occurrences are known: every payload value plus the
    /// occurrence, so identical rows stay distinct and reloads match.
    fn content_keys(&self, typed: &RecordBatch, first: usize, rows: &mut [RowHash]) {
        let mut key = Encoder::default();
        for (i, h) in rows.iter_mut().enumerate() {
            key.clear();
            key.extend(&self.namespace);
            for col in typed.columns() {
                key.push_cell(col.as_ref(), first + i);
            }
            key.push_number(u64::from(h.occurrence));
            h.hk = self.hasher.hash16(key.bytes());
        }
    }

    /// The readable key of one row (without a content key's occurrence), into `out`.
    fn readable_into(&self, typed: &RecordBatch, row: usize, out: &mut Vec<u8>) {
        let mut payload = Encoder::default();
        let places: Vec<_> = typed
            .columns()
            .iter()
            .map(|col| payload.push_cell(col.as_ref(), row))
            .collect();
        self.join_readable(&payload, &places, out);
    }

    /// The key parts (or for a content key every value) joined with `|`.
    fn join_readable(
        &self,
        payload: &Encoder,
        places: &[Option<std::ops::Range<usize>>],
        out: &mut Vec<u8>,
    ) {
        // Runs for every row of a first load: no allocation unless upper-casing.
        let mut push = |i: usize, place: &Option<std::ops::Range<usize>>| {
            if i > 0 {
                out.push(b'|');
            }
            let part = cell_text(payload, place);
            if self.upper && self.key.is_some() {
                out.extend_from_slice(String::from_utf8_lossy(part).to_uppercase().as_bytes());
            } else {
                out.extend_from_slice(part);
            }
        };
        match &self.key {
            Some(cols) => cols
                .iter()
                .enumerate()
                .for_each(|(i, &c)| push(i, &places[c])),
            None => places.iter().enumerate().for_each(|(i, p)| push(i, p)),
        }
    }
}

/// The canonical text of a cell inside an encoding, empty for NULL.
fn cell_text<'a>(payload: &'a Encoder, place: &Option<std::ops::Range<usize>>) -> &'a [u8] {
    match place {
        Some(r) => &payload.bytes()[r.clone()],
        None => b"",
    }
}

fn stage_schema_fields() -> Vec<Field> {
    vec![
        uuid_field("hk"),
        uuid_field("hashdiff"),
        Field::new("business_key", DataType::Utf8, true),
        Field::new("row_number", DataType::Int64, false),
    ]
}
