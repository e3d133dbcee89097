//! Extract stage: readers turn one input unit into Arrow record batches.
//!
//! Readers know nothing of DuckDB, tags or the lake. A reader is opened on a unit's bytes
//! (an `OpenContext`: the bytes, the name messages use, secrets, the state saved by the
//! source's last load) and yields batches whose columns are the source's columns in input
//! order, plus the provenance of every row; when it is done it may report an end state
//! (an API cursor) that the pipeline commits with the rows.
//!
//! Adding a reader: a config type implementing `ReaderKind`, and one line in `readers!`.

pub mod api;
pub mod csv;
pub mod excel;
pub mod json;
pub mod pdf;
pub mod period;

use std::path::{Path, PathBuf};

use duckdb::arrow::datatypes::SchemaRef;
use duckdb::arrow::record_batch::RecordBatch;
use serde::Deserialize;

pub use self::api::ApiConfig;
pub use self::csv::{CsvConfig, CsvReader};
pub use self::excel::{ExcelConfig, ExcelReader};
pub use self::json::JsonConfig;
pub use self::pdf::PdfConfig;
use crate::error::ReadError;
use crate::secrets::SecretStore;

/// Rows per batch: large enough to amortise per-batch work, small enough to bound memory.
pub const BATCH_ROWS: usize = 16_384;

/// The one list of readers: each entry is a `type = "..."` of `[reader]` (the variant's
/// name in snake case) and the config type that reads it.
macro_rules! readers {
    ($($(#[$doc:meta])* $variant:ident($config:ty),)*) => {
        /// `[reader]` of a source: which reader, and its options.
        // One per source, parsed once: the size of the largest reader's options is no cost.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum ReaderConfig {
            $($(#[$doc])* $variant($config),)*
        }

        impl ReaderConfig {
            /// The reader this config picks.
            pub fn kind(&self) -> &dyn ReaderKind {
                match self {
                    $(ReaderConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

readers! {
    /// Delimited text files.
    Csv(CsvConfig),
    /// Spreadsheets: xlsx, xlsm, xlsb, xls, ods.
    Excel(ExcelConfig),
    /// JSON files: an array of records, or one record a line.
    Json(JsonConfig),
    /// PDF statements: rows by a regular expression over the text lines.
    Pdf(PdfConfig),
    /// HTTP JSON APIs: one sync is one unit of pages.
    Api(ApiConfig),
}

/// What every reader's config offers the pipeline.
pub trait ReaderKind {
    /// The `path` option: a file, a folder or a glob, relative to the project.
    fn path(&self) -> &str;
    /// File endings a folder input is filtered by.
    fn extensions(&self) -> &'static [&'static str];
    /// Cross-field rules, as (key, what was expected).
    fn check(&self) -> Result<(), (String, String)>;
    /// How the input writes numbers and dates.
    fn value_format(&self) -> ValueFormat;
    /// Open a reader on one unit's bytes.
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError>;
    /// Names of the secrets the options name (an API token, a PDF password).
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
    /// An API source: its unit is fetched by a sync, not found among files.
    fn remote(&self) -> Option<&ApiConfig> {
        None
    }
}

/// What a reader is given to open one input unit.
pub struct OpenContext<'a> {
    /// Where the unit's bytes are: its lake object (every retry and every rebuild), or on a
    /// first load the original file while it is copied into the lake (the copy is hashed,
    /// so what is loaded is what the lake keeps).
    pub path: &'a Path,
    /// How messages name the unit: its original name, whose ending tells the format.
    pub name: &'a str,
    /// Secrets the source names (a PDF password, an API token).
    pub secrets: &'a dyn SecretStore,
    /// The state the source's last load saved (an API cursor), if any.
    pub state: Option<&'a str>,
    /// The lake, for units made of several objects (an API sync's pages).
    pub lake: Option<&'a crate::lake::Lake>,
}

impl<'a> OpenContext<'a> {
    /// A context with no secrets and no saved state.
    pub fn file(path: &'a Path, name: &'a str) -> Self {
        OpenContext {
            path,
            name,
            secrets: &NO_SECRETS,
            state: None,
            lake: None,
        }
    }
}

/// A store that has no secrets (for readers that need none).
struct NoSecrets;

static NO_SECRETS: NoSecrets = NoSecrets;

impl SecretStore for NoSecrets {
    fn get(&self, name: &str) -> Result<crate::secrets::Secret, crate::error::SecretError> {
        Err(crate::error::SecretError::missing(name, None))
    }
}

/// How text values are written in an input, for parsing typed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueFormat {
    /// Decimal separator, `.` unless the source says otherwise.
    pub decimal_separator: char,
    /// Thousands separator removed before parsing numbers, if any.
    pub thousands_separator: Option<char>,
    /// chrono formats of dates, tried in order; ISO 8601 when none.
    pub date_format: Option<DateFormats>,
    /// chrono format of timestamps; ISO 8601 / RFC 3339 when none.
    pub timestamp_format: Option<String>,
    /// The year of dates written without one (`05 Nov` with `date_format = "%d %b"`).
    pub year: Option<i32>,
    /// The statement period such dates fall in, found in the unit (`period`).
    pub period: Option<period::Period>,
}

impl Default for ValueFormat {
    fn default() -> Self {
        ValueFormat {
            decimal_separator: '.',
            thousands_separator: None,
            date_format: None,
            timestamp_format: None,
            year: None,
            period: None,
        }
    }
}

/// Where a source's data ends (`end` of CSV and spreadsheet sources).
#[derive(Debug, Clone)]
pub enum End {
    /// At the end of the file or table.
    File,
    /// At the first blank row after data.
    Blank,
    /// At the first row matching this.
    Pattern(regex::Regex),
}

impl End {
    /// The `end` option: none, `"blank"`, or a regular expression.
    pub fn parse(option: Option<&str>) -> Result<End, (String, String)> {
        Ok(match option {
            None => End::File,
            Some("blank") => End::Blank,
            Some(p) => End::Pattern(pattern("end", p)?),
        })
    }
}

/// Column names made unique as a header is read. DuckDB's identifiers ignore case, so
/// `Text` and `TEXT` in one header are one name twice: the second becomes `TEXT_2`.
#[derive(Default)]
pub struct UniqueNames {
    seen: std::collections::HashSet<String>,
}

impl UniqueNames {
    /// `name`, or `name_2`, `name_3`, … if it is taken.
    pub fn unique(&mut self, name: String) -> String {
        let mut out = name.clone();
        let mut n = 2;
        while !self.seen.insert(out.to_lowercase()) {
            out = format!("{name}_{n}");
            n += 1;
        }
        out
    }
}

/// `date_format`: one chrono format, or a list tried in order (a column that writes
/// `September 15` this year and `2018 August 28` before).
#[derive(Clone, PartialEq, Eq)]
pub struct DateFormats(pub Vec<String>);

impl DateFormats {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl From<&str> for DateFormats {
    fn from(format: &str) -> Self {
        DateFormats(vec![format.to_string()])
    }
}

/// One format prints as the string it always was (definition fingerprints hash this).
impl std::fmt::Debug for DateFormats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0[..] {
            [one] => one.fmt(f),
            many => many.fmt(f),
        }
    }
}

impl<'de> Deserialize<'de> for DateFormats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "`date_format`: expected a chrono format such as \"%d.%m.%Y\", or a list of them",
            )
        })? {
            OneOrMany::One(f) => Ok(DateFormats(vec![f])),
            OneOrMany::Many(list) if list.is_empty() => Err(serde::de::Error::custom(
                "`date_format`: expected at least one format in the list",
            )),
            OneOrMany::Many(list) => Ok(DateFormats(list)),
        }
    }
}

/// `date_format` and `timestamp_format` must be chrono formats: a specifier chrono does
/// not know is a definition error, not a rejected file.
pub fn check_formats(
    date: Option<&DateFormats>,
    timestamp: Option<&str>,
) -> Result<(), (String, String)> {
    use chrono::format::{Item, StrftimeItems};
    let dates = date.into_iter().flat_map(DateFormats::iter);
    let named = dates
        .map(|f| ("date_format", f))
        .chain(timestamp.map(|f| ("timestamp_format", f)));
    for (key, f) in named {
        if f.trim().is_empty() {
            return Err((key.into(), "is an empty format".into()));
        }
        if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
            return Err((
                key.into(),
                format!("`{f}` is not a chrono format (such as `%d.%m.%Y`)"),
            ));
        }
    }
    Ok(())
}

thread_local! {
    /// Whether this thread runs reader code under `guarded`.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run reader code so that a panic in it (calamine on a hostile workbook, say) becomes a
/// `ReadError` of the unit `name` (exit 3) instead of ending the process.
pub fn guarded<T>(name: &str, f: impl FnOnce() -> Result<T, ReadError>) -> Result<T, ReadError> {
    catch_panic(f).unwrap_or_else(|what| {
        Err(ReadError::Invalid {
            path: name.to_string(),
            message: format!(
                "the reader failed on it ({what}): the file is damaged, or of a kind this \
                 reader does not handle; please report it"
            ),
        })
    })
}

/// Run `f`, turning a panic in it into `Err` with the panic's message (and keeping the
/// panic hook quiet about it, as `guarded` does).
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into())
    })
}

/// Whether the current thread is inside `guarded` (its panics are reported as errors).
pub fn in_guarded_reader() -> bool {
    GUARDED.with(|g| g.get())
}

/// Compile a regular expression of option `key`.
pub fn pattern(key: &str, text: &str) -> Result<regex::Regex, (String, String)> {
    regex::Regex::new(text).map_err(|e| (key.to_string(), format!("not a regular expression: {e}")))
}

/// Whether a chrono date format writes the year (`%Y`, `%y`, `%C`, `%G`, `%F`, `%D`,
/// `%x`, `%+`).
pub fn format_has_year(format: &str) -> bool {
    ["%Y", "%y", "%G", "%g", "%F", "%D", "%x", "%+", "%C"]
        .iter()
        .any(|spec| format.contains(spec))
}

/// One batch of an input: the columns, and the position of each row in the input.
#[derive(Debug, Clone)]
pub struct InputBatch {
    /// Columns in input order, named as the input names them.
    pub data: RecordBatch,
    /// Position of each row in the unit, stored as `row_number`: the line for text, the
    /// sheet row for spreadsheets, the line counted over the whole document for pages.
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
    /// `page 3 line 12`: positions are lines counted over the whole document;
    /// `page_starts[i]` is the position of the first line of page `i + 1`.
    Pages {
        page_starts: std::sync::Arc<Vec<i64>>,
    },
    /// `record 17`, or `page 2 record 5` for an API sync: positions are records counted
    /// over the unit; `page_starts` as for `Pages`.
    Records {
        page_starts: Option<std::sync::Arc<Vec<i64>>>,
    },
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
            Place::Pages { page_starts } => in_page(page_starts, position, "line"),
            Place::Records {
                page_starts: Some(starts),
            } => in_page(starts, position, "record"),
            Place::Records { page_starts: None } => format!("record {position}"),
        }
    }
}

/// `page P <what> N` of a position counted over pages starting at `starts`.
fn in_page(starts: &[i64], position: i64, what: &str) -> String {
    let page = starts.partition_point(|&s| s <= position);
    match page.checked_sub(1).map(|p| starts[p]) {
        Some(start) => format!("page {page} {what} {}", position - start + 1),
        None => format!("{what} {position}"),
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
    /// State to save with the unit's rows, asked once every batch was read: an API
    /// reader's new cursor (text of the reader's own making). It is committed in the
    /// unit's transaction, so it never runs ahead of the data, and the next load's
    /// `OpenContext::state` is it. Most readers have none.
    fn end_state(&self) -> Option<String> {
        None
    }
    /// The unit holds no records, so it has no columns either (an empty JSON array, an
    /// API sync that found nothing new): there is nothing to check against the tags and
    /// nothing to load, only the unit (and its end state) to record.
    fn no_records(&self) -> bool {
        false
    }
    /// The statement period the unit names, for dates written without a year (found
    /// where the source's `period` option says; a reader without it has none).
    fn period(&self) -> Option<period::Period> {
        None
    }
}

impl ReaderConfig {
    /// The `path` option: a file, a folder or a glob, relative to the project.
    pub fn path(&self) -> &str {
        self.kind().path()
    }

    /// Cross-field rules, as (key, what was expected).
    pub fn check(&self) -> Result<(), (String, String)> {
        self.kind().check()
    }

    /// How the input writes numbers and dates.
    pub fn value_format(&self) -> ValueFormat {
        self.kind().value_format()
    }

    /// Open a reader on one unit. A panic inside the reader (a library meeting a hostile
    /// file) is that unit's error, not the end of the run.
    pub fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError> {
        guarded(ctx.name, || self.kind().open(ctx))
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
                let wanted = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    self.kind()
                        .extensions()
                        .contains(&e.to_ascii_lowercase().as_str())
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_the_page_and_its_line() {
        let place = Place::Pages {
            page_starts: std::sync::Arc::new(vec![1, 41, 75]),
        };
        assert_eq!(place.describe(1, 0), "page 1 line 1");
        assert_eq!(place.describe(40, 0), "page 1 line 40");
        assert_eq!(place.describe(41, 0), "page 2 line 1");
        assert_eq!(place.describe(80, 0), "page 3 line 6");
        assert_eq!(Place::Lines.describe(7, 3), "line 7");
    }
}
