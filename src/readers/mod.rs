//! Extract stage: readers turn one input unit (a file) into Arrow record batches.
//!
//! Readers know nothing of DuckDB or tags. Each yields batches whose columns are the source's
//! columns in input order, plus the provenance of every row (its line in the file).

pub mod csv;
pub mod excel;

use std::path::{Path, PathBuf};

use duckdb::arrow::datatypes::SchemaRef;
use duckdb::arrow::record_batch::RecordBatch;
use serde::Deserialize;

pub use self::csv::{CsvConfig, CsvReader};
pub use self::excel::{ExcelConfig, ExcelReader};
use crate::error::ReadError;

/// Rows per batch: large enough to amortise per-batch work, small enough to bound memory.
pub const BATCH_ROWS: usize = 16_384;

/// `[reader]` of a source: which reader, and its options.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReaderConfig {
    /// Delimited text files.
    Csv(CsvConfig),
    /// Spreadsheets: xlsx, xlsm, xlsb, xls, ods.
    Excel(ExcelConfig),
}

/// How text values are written in an input, for parsing typed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueFormat {
    /// Decimal separator, `.` unless the source says otherwise.
    pub decimal_separator: char,
    /// Thousands separator removed before parsing numbers, if any.
    pub thousands_separator: Option<char>,
    /// chrono format of dates; ISO 8601 when none.
    pub date_format: Option<String>,
    /// chrono format of timestamps; ISO 8601 / RFC 3339 when none.
    pub timestamp_format: Option<String>,
}

impl Default for ValueFormat {
    fn default() -> Self {
        ValueFormat {
            decimal_separator: '.',
            thousands_separator: None,
            date_format: None,
            timestamp_format: None,
        }
    }
}

/// One batch of an input: the columns, and the position of each row in the input.
#[derive(Debug, Clone)]
pub struct InputBatch {
    /// Columns in input order, named as the input names them.
    pub data: RecordBatch,
    /// Position of each row in the file (line number for text, row number for sheets).
    pub rows: Vec<i64>,
    /// How to name a place in this batch in messages.
    pub place: Place,
}

/// How messages name where a value is.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// `line 17`.
    Lines,
    /// `sheet `January` cell C17`: the sheet and each column's letters.
    Cells { sheet: String, columns: Vec<String> },
}

impl Place {
    /// Where the value of `column` (index) in the row at `position` is.
    pub fn describe(&self, position: i64, column: usize) -> String {
        match self {
            Place::Lines => format!("line {position}"),
            Place::Cells { sheet, columns } => format!(
                "sheet `{sheet}` cell {}{position}",
                columns.get(column).map(String::as_str).unwrap_or("?")
            ),
        }
    }
}

/// A reader of one input unit. Batches are pulled one at a time, so memory stays bounded
/// whatever the size of the input. Errors are typed `ReadError`s that name the place.
pub trait InputReader: Send {
    /// The input's columns in order, known once the reader is open (header read).
    fn columns(&self) -> &[String];
    /// Their types: text for text formats; for typed formats, what every cell allows.
    fn schema(&self) -> SchemaRef;
    /// The next batch, or `None` at the end of the input.
    fn next_batch(&mut self) -> Result<Option<InputBatch>, ReadError>;
}

impl ReaderConfig {
    /// The `path` option: a file, a folder or a glob, relative to the project.
    pub fn path(&self) -> &str {
        match self {
            ReaderConfig::Csv(c) => &c.path,
            ReaderConfig::Excel(c) => &c.path,
        }
    }

    /// File endings a folder input is filtered by.
    fn extensions(&self) -> &'static [&'static str] {
        match self {
            ReaderConfig::Csv(_) => &["csv", "tsv", "txt"],
            ReaderConfig::Excel(_) => &["xlsx", "xlsm", "xlsb", "xls", "ods"],
        }
    }

    /// Cross-field rules, as (key, what was expected).
    pub fn check(&self) -> Result<(), (String, String)> {
        match self {
            ReaderConfig::Csv(c) => c.check(),
            ReaderConfig::Excel(c) => c.check(),
        }
    }

    /// How the input writes numbers and dates.
    pub fn value_format(&self) -> ValueFormat {
        match self {
            ReaderConfig::Csv(c) => c.value_format(),
            ReaderConfig::Excel(c) => c.value_format(),
        }
    }

    /// The input units: every file the path names, sorted, each once. An existing folder
    /// or a glob may name none; a file path that does not exist is an error.
    pub fn inputs(&self, dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
        let pattern = self.path();
        let full = dir.join(pattern);
        let io = |source| ReadError::Io {
            path: full.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        if full.is_dir() {
            for entry in std::fs::read_dir(&full).map_err(io)? {
                let path = entry.map_err(io)?.path();
                let hidden = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                let wanted = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| self.extensions().contains(&e.to_ascii_lowercase().as_str()));
                if path.is_file() && wanted && !hidden {
                    files.push(path);
                }
            }
        } else if full.is_file() {
            files.push(full.clone());
        } else {
            let text = full.to_string_lossy();
            let paths = glob::glob(&text).map_err(|e| ReadError::Invalid {
                path: pattern.to_string(),
                message: format!("bad glob pattern: {e}"),
            })?;
            for path in paths {
                let path = path.map_err(|e| ReadError::Io {
                    path: e.path().display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                if path.is_file() {
                    files.push(path);
                }
            }
        }
        files.sort();
        files.dedup();
        // An empty folder or a glob that matches nothing yet is nothing to load; a plain
        // path that does not exist is most likely a typo.
        let is_pattern = pattern.contains(['*', '?', '[']);
        if files.is_empty() && !is_pattern && !full.is_dir() {
            return Err(ReadError::NoInput {
                pattern: pattern.to_string(),
            });
        }
        Ok(files)
    }
}

/// Open a reader on one input file. `name` is how messages name the file.
pub fn open(
    config: &ReaderConfig,
    path: &Path,
    name: &str,
) -> Result<Box<dyn InputReader>, ReadError> {
    match config {
        ReaderConfig::Csv(c) => Ok(Box::new(CsvReader::open(c, path, name)?)),
        ReaderConfig::Excel(c) => Ok(Box::new(ExcelReader::open(c, path, name)?)),
    }
}
