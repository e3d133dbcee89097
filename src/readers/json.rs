//! JSON records: `type = "json"` for local files, and the record stage of API sources.
//!
//! A unit is one or more JSON documents read in order (one file; or an API sync's pages,
//! each a lake object). Each document is either a JSON value whose records are the array
//! at a JSON pointer (`records = "/data"`; `""` is the document itself), or newline-
//! delimited JSON (`.ndjson`, `.jsonl`: one record a line). Records flatten into columns
//! (`crate::json::flatten`); the columns are the union over the unit in first-seen
//! order, so the unit is read twice: once for its columns, once for its rows, each time
//! streamed with one record in memory. Every value is text, as in CSV: the tag contract
//! types it, and JSON numbers arrive with their own text (exact decimals).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use duckdb::arrow::array::{ArrayRef, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::{
    check_formats, InputBatch, InputReader, OpenContext, Place, ReaderKind, UniqueNames,
    ValueFormat, BATCH_ROWS,
};
use crate::error::ReadError;
use crate::json::{self, JsonError, Parser, Value};

/// `[reader] type = "json"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// A file, a folder or a glob, relative to the project.
    pub path: String,
    /// JSON pointer to the array of records in a `.json` file; `""` (the default) is the
    /// document itself. Not used for `.ndjson`/`.jsonl`, which hold one record a line.
    #[serde(default)]
    pub records: Option<String>,
    /// Decimal separator of numbers written as strings (`"12,50"`).
    #[serde(default)]
    pub decimal_separator: Option<String>,
    /// Thousands separator of numbers written as strings.
    #[serde(default)]
    pub thousands_separator: Option<String>,
    /// chrono format of dates written as strings; ISO 8601 when omitted.
    #[serde(default)]
    pub date_format: Option<super::DateFormats>,
    /// chrono format of timestamps written as strings; ISO 8601 / RFC 3339 when omitted.
    #[serde(default)]
    pub timestamp_format: Option<String>,
}

impl ReaderKind for JsonConfig {
    fn path(&self) -> &str {
        &self.path
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["json", "ndjson", "jsonl"]
    }

    fn check(&self) -> Result<(), (String, String)> {
        if let Some(p) = &self.records {
            json::parse_pointer(p).map_err(|e| ("records".to_string(), e))?;
        }
        text_options!(self).check()?;
        every_format_has_a_year(self.date_format.as_ref())
    }

    fn value_format(&self) -> ValueFormat {
        text_options!(self).value_format()
    }

    fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError> {
        let lines = Path::new(ctx.name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("ndjson") || e.eq_ignore_ascii_case("jsonl"));
        let layout = if lines {
            Layout::Lines
        } else {
            let pointer =
                json::parse_pointer(self.records.as_deref().unwrap_or("")).map_err(|message| {
                    ReadError::Invalid {
                        path: ctx.name.to_string(),
                        message,
                    }
                })?;
            Layout::Records(pointer)
        };
        let doc = Document {
            path: ctx.path.to_path_buf(),
            name: ctx.name.to_string(),
            layout,
        };
        Ok(Box::new(RecordsReader::open(vec![doc], false, &[], None)?))
    }
}

/// For readers without `year` or `period` (JSON, APIs): every `date_format` writes the
/// year, or no date could be read.
pub fn every_format_has_a_year(
    formats: Option<&super::DateFormats>,
) -> Result<(), (String, String)> {
    match formats.and_then(|fs| fs.iter().find(|f| !super::format_has_year(f))) {
        Some(f) => Err((
            "date_format".into(),
            format!("`{f}` has no year, and this reader has no `year` or `period` to give one"),
        )),
        None => Ok(()),
    }
}

/// The options of readers whose values arrive as text (JSON, API, PDF): how numbers and
/// dates are written.
pub struct TextOptions<'a> {
    pub decimal_separator: &'a Option<String>,
    pub thousands_separator: &'a Option<String>,
    pub date_format: &'a Option<super::DateFormats>,
    pub timestamp_format: &'a Option<String>,
}

impl TextOptions<'_> {
    /// Both separators are single characters, and differ; the formats are chrono's.
    pub fn check(&self) -> Result<(), (String, String)> {
        let dec = super::csv::one_char("decimal_separator", self.decimal_separator)?;
        let thou = super::csv::one_char("thousands_separator", self.thousands_separator)?;
        if dec.is_some() && dec == thou {
            return Err((
                "thousands_separator".into(),
                "must differ from decimal_separator".into(),
            ));
        }
        check_formats(self.date_format.as_ref(), self.timestamp_format.as_deref())
    }

    /// The value format these options give.
    pub fn value_format(&self) -> ValueFormat {
        ValueFormat {
            decimal_separator: super::csv::one_char("", self.decimal_separator)
                .ok()
                .flatten()
                .unwrap_or('.'),
            thousands_separator: super::csv::one_char("", self.thousands_separator)
                .ok()
                .flatten(),
            date_format: self.date_format.clone(),
            timestamp_format: self.timestamp_format.clone(),
            year: None,
            period: None,
        }
    }
}

/// `TextOptions` of a config with the four usual fields.
macro_rules! text_options {
    ($config:expr) => {
        $crate::readers::json::TextOptions {
            decimal_separator: &$config.decimal_separator,
            thousands_separator: &$config.thousands_separator,
            date_format: &$config.date_format,
            timestamp_format: &$config.timestamp_format,
        }
    };
}
pub(crate) use text_options;

/// How a document holds its records.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// The array at this pointer of one JSON document.
    Records(Vec<String>),
    /// One record a line (NDJSON).
    Lines,
}

/// One JSON document of a unit.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where its bytes are.
    pub path: PathBuf,
    /// How messages name it: the file, or an API page's URL and number.
    pub name: String,
    pub layout: Layout,
}

/// What the first pass over a unit found.
pub struct Scan {
    /// The values at the capture pointers, per document.
    pub captured: Vec<Vec<Option<Value>>>,
    /// Records per document.
    pub records: Vec<u64>,
    /// The latest value of the tracked column (an API's incremental field), if asked.
    pub latest: Option<String>,
}

/// A column whose latest value the first pass keeps, and what "later" means for it.
pub struct Track<'a> {
    pub column: &'a str,
    pub later: fn(&str, &str) -> bool,
}

/// Reads the records of a unit's documents as text columns.
pub struct RecordsReader {
    documents: Arc<Vec<Document>>,
    columns: Vec<String>,
    /// Flattened name -> column.
    index: Arc<HashMap<String, usize>>,
    schema: SchemaRef,
    place: Place,
    /// Batches from the second pass, made on their own thread.
    batches: Option<Receiver<Result<InputBatch, ReadError>>>,
    scan: Scan,
    total: u64,
    /// Records given out so far.
    delivered: u64,
    end_state: Option<String>,
}

impl RecordsReader {
    /// Open a unit: the first pass reads every document for its columns and checks it.
    /// `pages`: name places by page (an API sync) rather than by record alone. The values
    /// at `captures` (pointers) are kept per document, for the caller.
    pub fn open(
        documents: Vec<Document>,
        pages: bool,
        captures: &[Vec<String>],
        track: Option<Track<'_>>,
    ) -> Result<Self, ReadError> {
        let mut names = UniqueNames::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut columns = Vec::new();
        let mut scan = Scan {
            captured: Vec::new(),
            records: Vec::new(),
            latest: None,
        };
        let mut flat = Vec::new();
        let mut ordinal = 0u64;
        // The record that last set each column, to find one set twice.
        let mut stamp: Vec<u64> = Vec::new();
        for doc in &documents {
            let mut count = 0u64;
            let captured = each_record(doc, captures, &mut |record, line| {
                ordinal += 1;
                count += 1;
                flat.clear();
                json::flatten(record, &mut flat).map_err(|m| record_error(ordinal, line, m))?;
                if let Some(t) = &track {
                    if let Some((_, Some(v))) = flat.iter().find(|(n, _)| n == t.column) {
                        if scan.latest.as_deref().is_none_or(|l| (t.later)(v, l)) {
                            scan.latest = Some(v.clone());
                        }
                    }
                }
                for (name, _) in &flat {
                    let i = match index.get(name) {
                        Some(&i) => i,
                        None => {
                            let unique = names.unique(name.clone());
                            index.insert(name.clone(), columns.len());
                            columns.push(unique);
                            stamp.push(0);
                            columns.len() - 1
                        }
                    };
                    if std::mem::replace(&mut stamp[i], ordinal) == ordinal {
                        return Err(record_error(
                            ordinal,
                            line,
                            format!("`{name}` is given twice"),
                        ));
                    }
                }
                Ok(())
            })?;
            scan.captured.push(captured);
            scan.records.push(count);
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let mut starts = Vec::with_capacity(documents.len());
        let mut at = 1i64;
        for n in &scan.records {
            starts.push(at);
            at += *n as i64;
        }
        let place = Place::Records {
            page_starts: pages.then(|| Arc::new(starts)),
        };
        Ok(RecordsReader {
            documents: Arc::new(documents),
            columns,
            index: Arc::new(index),
            schema,
            place,
            batches: None,
            total: ordinal,
            delivered: 0,
            scan,
            end_state: None,
        })
    }

    /// What the first pass found.
    pub fn scan(&self) -> &Scan {
        &self.scan
    }

    /// The state to report once every batch was read.
    pub fn set_end_state(&mut self, state: Option<String>) {
        self.end_state = state;
    }

    fn start(&mut self) -> &Receiver<Result<InputBatch, ReadError>> {
        self.batches.get_or_insert_with(|| {
            let (tx, rx) = sync_channel(2);
            let documents = self.documents.clone();
            let index = self.index.clone();
            let schema = self.schema.clone();
            let place = self.place.clone();
            std::thread::spawn(move || {
                let mut batch = Batch::new(&schema);
                let mut ordinal = 0u64;
                let mut flat = Vec::new();
                for doc in documents.iter() {
                    let done = each_record(doc, &[], &mut |record, line| {
                        ordinal += 1;
                        flat.clear();
                        json::flatten(record, &mut flat)
                            .map_err(|m| record_error(ordinal, line, m))?;
                        batch
                            .push(&index, &mut flat, ordinal)
                            .map_err(|m| record_error(ordinal, line, m))?;
                        if batch.rows.len() >= BATCH_ROWS {
                            let full = std::mem::replace(&mut batch, Batch::new(&schema));
                            let out = full.finish(&schema, &place, &doc.name);
                            if tx.send(out).is_err() {
                                return Err(JsonError {
                                    line,
                                    column: 0,
                                    message: "stopped".into(),
                                });
                            }
                        }
                        Ok(())
                    });
                    if let Err(e) = done {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
                if !batch.rows.is_empty() {
                    let name = documents.last().map(|d| d.name.as_str()).unwrap_or("");
                    let _ = tx.send(batch.finish(&schema, &place, name));
                }
            });
            rx
        })
    }
}

fn record_error(ordinal: u64, line: u64, message: String) -> JsonError {
    JsonError {
        line,
        column: 1,
        message: format!("record {ordinal}: {message}"),
    }
}

/// Stream a document's records to `each`; the values at `captures`.
fn each_record(
    doc: &Document,
    captures: &[Vec<String>],
    each: &mut dyn FnMut(Value, u64) -> Result<(), JsonError>,
) -> Result<Vec<Option<Value>>, ReadError> {
    let file = std::fs::File::open(&doc.path).map_err(|source| ReadError::Io {
        path: doc.name.clone(),
        source,
    })?;
    let mut parser = Parser::new(std::io::BufReader::with_capacity(1 << 16, file));
    let mut slots: Vec<(Vec<String>, Option<Value>)> =
        captures.iter().map(|p| (p.clone(), None)).collect();
    let parsed = match &doc.layout {
        Layout::Records(pointer) => parser.records(pointer, &mut slots, each),
        Layout::Lines => parser.lines(each),
    };
    parsed.map_err(|e| ReadError::Malformed {
        path: doc.name.clone(),
        line: e.line,
        message: if e.column > 1 {
            format!("column {}: {}", e.column, e.message)
        } else {
            e.message
        },
    })?;
    Ok(slots.into_iter().map(|(_, v)| v).collect())
}

/// Rows being gathered into one batch.
struct Batch {
    builders: Vec<StringBuilder>,
    rows: Vec<i64>,
    /// Which columns the current record set, to find a column set twice.
    set: Vec<bool>,
}

impl Batch {
    fn new(schema: &SchemaRef) -> Self {
        let n = schema.fields().len();
        Batch {
            builders: (0..n).map(|_| StringBuilder::new()).collect(),
            rows: Vec::new(),
            set: vec![false; n],
        }
    }

    fn push(
        &mut self,
        index: &HashMap<String, usize>,
        flat: &mut Vec<(String, Option<String>)>,
        ordinal: u64,
    ) -> Result<(), String> {
        let mut values: Vec<Option<String>> = vec![None; self.builders.len()];
        self.set.iter_mut().for_each(|s| *s = false);
        for (name, value) in flat.drain(..) {
            let Some(&i) = index.get(&name) else {
                return Err(format!("column `{name}` was not there on the first read"));
            };
            if std::mem::replace(&mut self.set[i], true) {
                return Err(format!("`{name}` is given twice"));
            }
            values[i] = value;
        }
        for (b, v) in self.builders.iter_mut().zip(values) {
            b.append_option(v);
        }
        self.rows.push(ordinal as i64);
        Ok(())
    }

    fn finish(
        mut self,
        schema: &SchemaRef,
        place: &Place,
        name: &str,
    ) -> Result<InputBatch, ReadError> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let data = if arrays.is_empty() {
            RecordBatch::try_new_with_options(
                schema.clone(),
                arrays,
                &duckdb::arrow::record_batch::RecordBatchOptions::new()
                    .with_row_count(Some(self.rows.len())),
            )
        } else {
            RecordBatch::try_new(schema.clone(), arrays)
        }
        .map_err(|e| ReadError::Invalid {
            path: name.to_string(),
            message: format!("cannot build a batch: {e}"),
        })?;
        Ok(InputBatch {
            data,
            rows: self.rows,
            place: place.clone(),
        })
    }
}

impl InputReader for RecordsReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<InputBatch>, ReadError> {
        if self.total == 0 {
            return Ok(None);
        }
        match self.start().recv() {
            Ok(batch) => {
                let batch = batch?;
                self.delivered += batch.rows.len() as u64;
                Ok(Some(batch))
            }
            // The thread is done: it must have given every record the first pass counted
            // (a panic in it, or any early end, is an error, not a shorter unit).
            Err(_) if self.delivered == self.total => Ok(None),
            Err(_) => Err(ReadError::Invalid {
                path: self
                    .documents
                    .first()
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                message: format!(
                    "the reader stopped after {} of {} records; please report it",
                    self.delivered, self.total
                ),
            }),
        }
    }

    fn end_state(&self) -> Option<String> {
        self.end_state.clone()
    }

    fn no_records(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(dir: &Path, name: &str, text: &str, layout: Layout) -> Document {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        Document {
            path,
            name: name.into(),
            layout,
        }
    }

    fn text(batch: &InputBatch, col: usize, row: usize) -> Option<String> {
        use duckdb::arrow::array::{Array, StringArray};
        let a = batch
            .data
            .column(col)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        (!a.is_null(row)).then(|| a.value(row).to_string())
    }

    #[test]
    fn columns_are_the_union_in_first_seen_order_over_pages() {
        let dir = tempfile::tempdir().expect("dir");
        let records = Layout::Records(json::parse_pointer("/data").expect("p"));
        let docs = vec![
            doc(
                dir.path(),
                "p1",
                r#"{"data": [{"id": 1, "amount": 1.10}]}"#,
                records.clone(),
            ),
            doc(dir.path(), "p2", r#"{"data": []}"#, records.clone()),
            doc(
                dir.path(),
                "p3",
                r#"{"data": [{"id": 2, "account": {"iban": "X"}, "ID": 9}]}"#,
                records,
            ),
        ];
        let mut r = RecordsReader::open(docs, true, &[], None).expect("open");
        assert_eq!(r.columns(), ["id", "amount", "account.iban", "ID_2"]);
        assert_eq!(r.scan().records, [1, 0, 1]);
        let b = r.next_batch().expect("batch").expect("some");
        assert_eq!(b.rows, [1, 2]);
        assert_eq!(text(&b, 1, 0).as_deref(), Some("1.10"));
        assert_eq!(text(&b, 1, 1), None);
        assert_eq!(text(&b, 3, 1).as_deref(), Some("9"));
        assert_eq!(b.place.describe(2, 0), "page 3 record 1");
        assert!(r.next_batch().expect("end").is_none());
    }

    #[test]
    fn a_record_that_is_not_an_object_names_its_place() {
        let dir = tempfile::tempdir().expect("dir");
        let docs = vec![doc(
            dir.path(),
            "a.ndjson",
            "{\"a\": 1}\n[1, 2]\n",
            Layout::Lines,
        )];
        let e = RecordsReader::open(docs, false, &[], None)
            .err()
            .expect("refused");
        let shown = e.to_string();
        assert!(shown.contains("`a.ndjson` line 2"), "{shown}");
        assert!(
            shown.contains("record 2: a record must be an object"),
            "{shown}"
        );
    }

    #[test]
    fn a_column_given_twice_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let docs = vec![doc(
            dir.path(),
            "a.json",
            r#"[{"a": {"b": 1}, "a.b": 2}]"#,
            Layout::Records(Vec::new()),
        )];
        let e = RecordsReader::open(docs, false, &[], None)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("`a.b` is given twice"), "{e}");
    }
}
