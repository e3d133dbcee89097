//! Extract stage, spreadsheets: xlsx, xlsm, xlsb, xls and ods through calamine.
//!
//! A workbook is one input unit. Column types come from every cell of the column, not a
//! sample; a column that mixes kinds keeps every value as text rather than losing one.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use calamine::{open_workbook_from_rs, Data, Ods, Range, Reader, Xls, Xlsb, Xlsx};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::period::{Period, PeriodRule};
use super::{
    pattern, End, InputBatch, InputReader, OpenContext, Place, ReaderKind, UniqueNames,
    ValueFormat, BATCH_ROWS,
};
use crate::error::ReadError;

/// Name of the column that records each row's sheet when `sheets` loads several.
pub const SHEET_COLUMN: &str = "_sheet";

/// A sheet by position (0 = first) or by name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SheetRef {
    Index(usize),
    Name(String),
}

/// Several sheets: `"*"` for all, or a list of names.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SheetList {
    All(String),
    Names(Vec<String>),
}

/// `[reader] type = "excel"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcelConfig {
    /// A file, a folder or a glob, relative to the project.
    pub path: String,
    /// One sheet, by name or 0-based position; the first sheet by default.
    #[serde(default)]
    pub sheet: Option<SheetRef>,
    /// Several sheets of the same shape, loaded as one source: `"*"` or a list of names.
    /// Each row records its sheet in the column `_sheet`.
    #[serde(default)]
    pub sheets: Option<SheetList>,
    /// The header's row number as the spreadsheet shows it (1 = first row); found
    /// automatically when omitted.
    #[serde(default)]
    pub header_row: Option<u32>,
    /// Only this block of cells, such as `B3:H200`.
    #[serde(default)]
    pub range: Option<String>,
    /// chrono format of dates written as text cells.
    #[serde(default)]
    pub date_format: Option<super::DateFormats>,
    /// chrono format of timestamps written as text cells.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// The year of text dates whose `date_format` has none.
    #[serde(default)]
    pub year: Option<i32>,
    /// Or a regular expression finding the statement period in the rows above the header
    /// (groups `start` and/or `end`): such dates take the year that puts them in it.
    #[serde(default)]
    pub period: Option<String>,
    /// chrono format of the period's dates (ISO 8601 by default).
    #[serde(default)]
    pub period_format: Option<String>,
    /// The most cells a sheet's used area may span (default 20 million): a sheet is held
    /// whole in memory.
    #[serde(default)]
    pub max_cells: Option<u64>,
    /// The largest shared-string table a workbook may have, unpacked (`128MB` by
    /// default): calamine holds it whole, and a small zip can unpack to gigabytes.
    #[serde(default)]
    pub max_shared_strings: Option<String>,
    /// Rows hidden in the workbook are not data (`"skip"`, the default), or are
    /// (`"keep"`). Read from xlsx workbooks; other formats keep every row.
    #[serde(default)]
    pub hidden_rows: Option<String>,
    /// Whether the table has a header row (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// The columns' names when `header = false` (default `column_A`, `column_B`, …).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Rows that are not data: regular expressions matched against the row's text (its
    /// cells' text joined by tabs), such as `'^Total'`.
    #[serde(default)]
    pub skip_rows_matching: Vec<String>,
    /// Where the data ends: `"blank"` (the first empty row after data) or a regular
    /// expression (the first row matching it, and every row after it, are not data).
    #[serde(default)]
    pub end: Option<String>,
    /// Text cells that stand for no value, such as `["--", "N/A"]` (compared trimmed).
    #[serde(default)]
    pub null_values: Vec<String>,
}

/// What in a sheet is data, beyond the header and the block: `ExcelConfig`'s row options.
struct RowRules {
    header: bool,
    columns: Option<Vec<String>>,
    skip: Vec<regex::Regex>,
    end: End,
    period: Option<PeriodRule>,
    nulls: std::collections::HashSet<String>,
}

impl RowRules {
    fn of(config: &ExcelConfig) -> Result<RowRules, (String, String)> {
        Ok(RowRules {
            header: config.header.unwrap_or(true),
            columns: config.columns.clone(),
            skip: config
                .skip_rows_matching
                .iter()
                .map(|p| pattern("skip_rows_matching", p))
                .collect::<Result<_, _>>()?,
            end: End::parse(config.end.as_deref())?,
            period: config
                .period
                .as_deref()
                .map(|p| PeriodRule::new(p, config.period_format.as_deref()))
                .transpose()?,
            nulls: config
                .null_values
                .iter()
                .map(|v| v.trim().to_string())
                .collect(),
        })
    }
}

impl ReaderKind for ExcelConfig {
    fn path(&self) -> &str {
        &self.path
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["xlsx", "xlsm", "xlsb", "xls", "ods"]
    }

    fn check(&self) -> Result<(), (String, String)> {
        ExcelConfig::check(self)
    }

    fn value_format(&self) -> ValueFormat {
        ExcelConfig::value_format(self)
    }

    fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError> {
        let ext = extension(ctx.name);
        match content_of(ctx.path, ctx.name)? {
            // Banks export CSV under a `.xls` name; Excel opens it, so must we.
            Content::Text if ext == "xls" => {
                if self.sheet.is_some() || self.sheets.is_some() || self.range.is_some() {
                    return Err(read_error(
                        ctx.name,
                        "is text (CSV), not a workbook, so `sheet`, `sheets` and `range` do \
                         not apply; read it with `type = \"csv\"`"
                            .into(),
                    ));
                }
                let csv = super::CsvConfig::for_text_named_xls(self);
                Ok(Box::new(super::CsvReader::open(&csv, ctx.path, ctx.name)?))
            }
            Content::Unsupported(what) => Err(read_error(
                ctx.name,
                format!("is {what}, which cannot be read; open it in a spreadsheet program and save it as .xlsx"),
            )),
            _ => Ok(Box::new(ExcelReader::open(self, ctx.path, ctx.name)?)),
        }
    }
}

impl ExcelConfig {
    /// Cross-field rules, as (key, what was expected).
    pub fn check(&self) -> Result<(), (String, String)> {
        super::check_formats(self.date_format.as_ref(), self.timestamp_format.as_deref())?;
        super::period::check_year_options!(self)?;
        RowRules::of(self)?;
        if let Some(h) = self
            .hidden_rows
            .as_deref()
            .filter(|h| !matches!(*h, "skip" | "keep"))
        {
            return Err((
                "hidden_rows".into(),
                format!("`{h}` is neither \"skip\" nor \"keep\""),
            ));
        }
        if let Some(text) = &self.max_shared_strings {
            if crate::defs::parse_bytes(text).is_none() {
                return Err((
                    "max_shared_strings".into(),
                    format!("`{text}` is not a size such as `512MB`"),
                ));
            }
        }
        if self.columns.is_some() && self.header.unwrap_or(true) {
            return Err((
                "columns".into(),
                "names the columns of a table without a header; add `header = false`".into(),
            ));
        }
        if self.header == Some(false) && self.header_row.is_some() {
            return Err((
                "header_row".into(),
                "there is no header row with `header = false`".into(),
            ));
        }
        if self.sheet.is_some() && self.sheets.is_some() {
            return Err((
                "sheets".into(),
                "give either `sheet` or `sheets`, not both".into(),
            ));
        }
        if let Some(SheetList::All(s)) = &self.sheets {
            if s != "*" {
                return Err((
                    "sheets".into(),
                    format!("expected \"*\" or a list of sheet names, got {s:?}"),
                ));
            }
        }
        if self.header_row == Some(0) {
            return Err(("header_row".into(), "rows are numbered from 1".into()));
        }
        if let Some(r) = &self.range {
            parse_range(r).map_err(|m| ("range".to_string(), m))?;
        }
        Ok(())
    }

    /// How text cells write dates.
    pub fn value_format(&self) -> ValueFormat {
        ValueFormat {
            date_format: self.date_format.clone(),
            timestamp_format: self.timestamp_format.clone(),
            year: self.year,
            ..ValueFormat::default()
        }
    }
}

/// A cell as 0-based (row, column).
type Pos = (u32, u32);

/// `B3:H200` as 0-based (top left, bottom right), inclusive.
fn parse_range(text: &str) -> Result<(Pos, Pos), String> {
    let bad = || format!("expected a block of cells like `B3:H200`, got `{text}`");
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let start = parse_cell(a).ok_or_else(bad)?;
    let end = parse_cell(b).ok_or_else(bad)?;
    if end.0 < start.0 || end.1 < start.1 {
        return Err(bad());
    }
    Ok((start, end))
}

/// `C17` as 0-based (row, col).
fn parse_cell(text: &str) -> Option<Pos> {
    let text = text.trim().to_ascii_uppercase();
    let split = text.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = text.split_at(split);
    if letters.is_empty() || !letters.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut col: u32 = 0;
    for b in letters.bytes() {
        col = col.checked_mul(26)?.checked_add(u32::from(b - b'A') + 1)?;
    }
    let row: u32 = digits.parse().ok()?;
    (row >= 1).then(|| (row - 1, col - 1))
}

/// Column letters of a 0-based column: 0 = A, 27 = AB.
pub fn column_letters(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

/// The kind of a column, from all of its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Int,
    Float,
    Bool,
    Date,
    DateTime,
    Time,
    Text,
}

impl Kind {
    fn merge(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Empty, k) | (k, Empty) => k,
            (Int, Float) | (Float, Int) => Float,
            (Date, DateTime) | (DateTime, Date) => DateTime,
            _ => Text,
        }
    }

    fn arrow(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Empty | Kind::Text => DataType::Utf8,
        }
    }
}

/// A cell reduced to what the reader keeps.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Empty,
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    /// A time of day: a date-time cell without a date part (`14:30`).
    Time(NaiveTime),
    Text(String),
}

impl Cell {
    fn kind(&self) -> Kind {
        match self {
            Cell::Empty => Kind::Empty,
            Cell::Int(_) => Kind::Int,
            Cell::Float(_) => Kind::Float,
            Cell::Bool(_) => Kind::Bool,
            Cell::Date(_) => Kind::Date,
            Cell::DateTime(_) => Kind::DateTime,
            Cell::Time(_) => Kind::Time,
            Cell::Text(_) => Kind::Text,
        }
    }

    /// The cell as text, for columns that mix kinds.
    fn text(&self) -> Option<String> {
        match self {
            Cell::Empty => None,
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Bool(b) => Some(b.to_string()),
            Cell::Date(d) => Some(d.format("%Y-%m-%d").to_string()),
            Cell::DateTime(t) => Some(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Cell::Time(t) => {
                // As the hash recipe writes it (`00:00:01.5`), so that a column mixing
                // times and durations reads like duration text.
                let mut out = Vec::new();
                crate::canonical::canonical_time(time_micros(t), &mut out);
                Some(String::from_utf8_lossy(&out).into_owned())
            }
            Cell::Text(s) => Some(s.clone()),
        }
    }
}

/// A cell's text as a row pattern or a header sees it: trimmed, empty when the cell is.
fn cell_text(data: &Data) -> String {
    convert(data)
        .ok()
        .and_then(|c| c.text())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A double rounded to the 15 significant digits a spreadsheet keeps.
fn excel_precision(f: f64) -> f64 {
    if !f.is_finite() || f == 0.0 {
        return f;
    }
    format!("{f:.14e}").parse().unwrap_or(f)
}

/// A cell error (`#DIV/0!`) or unreadable value, with where it is.
type CellResult = Result<Cell, String>;

fn convert(data: &Data) -> CellResult {
    Ok(match data {
        Data::Empty => Cell::Empty,
        Data::Int(i) => Cell::Int(*i),
        Data::Float(f) => {
            // Spreadsheets keep 15 significant digits and show no more: a cached formula
            // result of 4.4000000000000004 is the 4.4 the sheet displays.
            let f = excel_precision(*f);
            // Whole numbers are stored as doubles; they are integers here.
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Cell::Int(f as i64)
            } else {
                Cell::Float(f)
            }
        }
        Data::Bool(b) => Cell::Bool(*b),
        Data::String(s) if s.trim().is_empty() => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        // A duration (`[h]:mm:ss`, a workout's time) reads as the sheet shows it.
        Data::DateTime(dt) if dt.is_duration() => {
            Cell::Text(duration_text((dt.as_f64() * 86_400_000.0).round() as i64))
        }
        // A serial date-time below 1 has no day: a time-only cell (`14:30`), not a
        // moment on the spreadsheet epoch's first day.
        Data::DateTime(dt) if (0.0..1.0).contains(&dt.as_f64()) => {
            Cell::Time(time_of_day((dt.as_f64() * 86_400_000.0).round() as i64))
        }
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0 => {
                Cell::Date(t.date())
            }
            Some(t) => Cell::DateTime(t),
            None => return Err(format!("date value {} is out of range", dt.as_f64())),
        },
        Data::DateTimeIso(s) => {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Cell::Date(d)
            } else if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                Cell::DateTime(t)
            } else {
                Cell::Text(s.clone())
            }
        }
        // OpenDocument's time values (`PT14H30M00S`) are durations and times of day
        // alike: under a day they are a time of day, otherwise the duration as text.
        Data::DurationIso(s) => match iso_duration_ms(s) {
            Some(ms) if (0..86_400_000).contains(&ms) => Cell::Time(time_of_day(ms)),
            Some(ms) => Cell::Text(duration_text(ms)),
            None => Cell::Text(s.clone()),
        },
        Data::Error(e) => return Err(format!("error value {e}")),
    })
}

/// The time of day `ms` milliseconds after midnight (a day's last millisecond at most).
fn time_of_day(ms: i64) -> NaiveTime {
    let ms = ms.clamp(0, 86_399_999);
    NaiveTime::from_num_seconds_from_midnight_opt(
        (ms / 1000) as u32,
        (ms % 1000) as u32 * 1_000_000,
    )
    .unwrap_or(NaiveTime::MIN)
}

/// Microseconds since midnight.
fn time_micros(t: &NaiveTime) -> i64 {
    i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)
}

/// A duration as `[hh]:mm:ss` shows it: `01:23:45`, `36:00:00`, `-00:30:00`,
/// `00:00:01.5` (as a time of day under a day long, so that a column of both reads alike).
fn duration_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (s, frac) = (ms / 1000, ms % 1000);
    let mut out = format!("{sign}{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac != 0 {
        out.push_str(format!(".{frac:03}").trim_end_matches('0'));
    }
    out
}

/// Milliseconds of an ISO 8601 duration as OpenDocument writes time values:
/// `PT14H30M00S`, `-PT0H30M`, `P1DT2H`, `PT0H0M1.5S`.
fn iso_duration_ms(s: &str) -> Option<i64> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let rest = rest.strip_prefix('P')?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut ms: f64 = 0.0;
    if !days.is_empty() {
        let d = days.strip_suffix('D')?;
        if d.starts_with(['-', '+']) {
            return None;
        }
        ms += d.parse::<f64>().ok()? * 86_400_000.0;
    }
    if days.is_empty() && time.is_empty() {
        return None;
    }
    let mut number = String::new();
    for c in time.chars() {
        if c == '-' || c == '+' {
            return None;
        }
        let unit = match c {
            'H' => 3_600_000.0,
            'M' => 60_000.0,
            'S' => 1000.0,
            _ => {
                number.push(c);
                continue;
            }
        };
        ms += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    if !number.is_empty() || !ms.is_finite() || ms.abs() > 1e15 {
        return None;
    }
    let ms = ms.round() as i64;
    Some(if negative { -ms } else { ms })
}

/// One sheet's table: header names and rows of cells with their sheet row numbers.
struct Table {
    sheet: String,
    columns: Vec<String>,
    /// 0-based absolute column of each column, for cell addresses.
    positions: Vec<u32>,
    rows: Vec<(u32, Vec<Cell>)>,
    /// The text of the rows above the header (cells joined by tabs, rows by line feeds),
    /// when the source looks for its statement period there.
    preamble: String,
}

/// Reads a workbook's selected sheets into typed batches.
pub struct ExcelReader {
    columns: Vec<String>,
    schema: SchemaRef,
    batches: VecDeque<InputBatch>,
    period: Option<Period>,
}

fn read_error(name: &str, message: String) -> ReadError {
    ReadError::Invalid {
        path: name.to_string(),
        message,
    }
}

/// The default of `max_cells`: the cells a sheet's used area may span. A sheet is held
/// whole, and a workbook of a few bytes can name two cells far apart (`A1` and
/// `XFD1048576`: 17 billion cells, half a terabyte).
pub const MAX_CELLS: u64 = 20_000_000;

/// The default of `max_shared_strings`: the unpacked size of a workbook's shared-string
/// table. calamine reads it whole when the workbook is opened.
pub const MAX_SHARED_STRINGS: u64 = 128 << 20;

/// One entry of a zip file's central directory.
struct ZipEntry {
    name: String,
    /// The size it unpacks to.
    unpacked: u64,
    packed: u64,
    /// 0 stored, 8 deflated.
    method: u16,
    /// Where its local header starts.
    offset: u64,
}

/// The bytes of entry `name` of a zip file, unpacked; `None` when it is not there, is
/// packed in a way other than stored or deflated, or unpacks to more than `limit`.
fn zip_read(path: &Path, entries: &[ZipEntry], name: &str, limit: u64) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let e = entries.iter().find(|e| e.name == name)?;
    if e.unpacked > limit {
        return None;
    }
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(e.offset)).ok()?;
    let mut head = [0u8; 30];
    f.read_exact(&mut head).ok()?;
    if head[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return None;
    }
    let skip = u16::from_le_bytes([head[26], head[27]]) as i64
        + u16::from_le_bytes([head[28], head[29]]) as i64;
    f.seek(SeekFrom::Current(skip)).ok()?;
    let packed = f.take(e.packed);
    let mut out = Vec::new();
    match e.method {
        0 => packed.take(limit + 1).read_to_end(&mut out).ok()?,
        8 => flate2::read::DeflateDecoder::new(packed)
            .take(limit + 1)
            .read_to_end(&mut out)
            .ok()?,
        _ => return None,
    };
    (out.len() as u64 <= limit).then_some(out)
}

/// The central directory of a zip file (the sizes an entry may be read to), or `None`
/// when it cannot be read.
fn zip_entries(path: &Path) -> Option<Vec<ZipEntry>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let tail_len = len.min(65_557);
    f.seek(SeekFrom::Start(len - tail_len)).ok()?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail).ok()?;
    let eocd = tail
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])?;
    let le16 = |b: &[u8], at: usize| -> Option<u64> {
        Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as u64)
    };
    let le32 = |b: &[u8], at: usize| -> Option<u64> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
    };
    let le64 = |b: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    let size = le32(&tail, eocd + 12)?;
    let offset = le32(&tail, eocd + 16)?;
    if size > 64 << 20 || offset.checked_add(size)? > len {
        return None;
    }
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut dir = vec![0u8; size as usize];
    f.read_exact(&mut dir).ok()?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while dir.get(at..at + 4) == Some(&[0x50, 0x4b, 0x01, 0x02]) {
        let method = le16(&dir, at + 10)? as u16;
        let mut packed = le32(&dir, at + 20)?;
        let mut unpacked = le32(&dir, at + 24)?;
        let mut offset = le32(&dir, at + 42)?;
        let name_len = le16(&dir, at + 28)? as usize;
        let extra_len = le16(&dir, at + 30)? as usize;
        let comment_len = le16(&dir, at + 32)? as usize;
        let name = String::from_utf8_lossy(dir.get(at + 46..at + 46 + name_len)?).into_owned();
        if unpacked == 0xFFFF_FFFF || packed == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            // Zip64: the values that overflowed are in the extra field 0x0001, in order.
            let extra = dir.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
            let mut e = 0;
            while e + 4 <= extra.len() {
                let (id, n) = (le16(extra, e)?, le16(extra, e + 2)? as usize);
                if id == 1 {
                    let mut v = e + 4;
                    for slot in [&mut unpacked, &mut packed, &mut offset] {
                        if *slot == 0xFFFF_FFFF {
                            *slot = le64(extra, v)?;
                            v += 8;
                        }
                    }
                    break;
                }
                e += 4 + n;
            }
        }
        out.push(ZipEntry {
            name,
            unpacked,
            packed,
            method,
            offset,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(out)
}

/// The rows (0-based) hidden in each sheet of an xlsx workbook, by sheet name: rows whose
/// `<row>` says `hidden="1"`. Empty when the workbook cannot be read so (calamine then
/// says what is wrong with it).
fn hidden_rows_xlsx(
    path: &Path,
) -> std::collections::HashMap<String, std::collections::HashSet<u32>> {
    let mut out = std::collections::HashMap::new();
    let Some(entries) = zip_entries(path) else {
        return out;
    };
    const XML_LIMIT: u64 = 512 << 20;
    let text = |name: &str| {
        zip_read(path, &entries, name, XML_LIMIT).map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    };
    let (Some(workbook), Some(rels)) =
        (text("xl/workbook.xml"), text("xl/_rels/workbook.xml.rels"))
    else {
        return out;
    };
    // Compiled once: a sheet's every `<row>` tag goes through them.
    let keys = ["Id", "Target", "name", "r:id", "hidden", "r"];
    let patterns: std::collections::HashMap<&str, regex::Regex> = keys
        .iter()
        .map(|k| {
            let re = regex::Regex::new(&format!(r#"(?:^|\s){k}\s*=\s*"([^"]*)""#));
            (*k, re.expect("a valid pattern"))
        })
        .collect();
    let attr = |tag: &str, key: &str| -> Option<String> {
        patterns[key].captures(tag).map(|c| xml_unescape(&c[1]))
    };
    let element = |name: &str| {
        regex::Regex::new(&format!(r"<(?:\w+:)?{name}\b[^>]*>")).expect("a valid pattern")
    };
    let (relationship, sheet_tag, row_tag) =
        (element("Relationship"), element("sheet"), element("row"));
    let tags = |xml: &str, re: &regex::Regex| -> Vec<String> {
        re.find_iter(xml).map(|m| m.as_str().to_string()).collect()
    };
    let targets: std::collections::HashMap<String, String> = tags(&rels, &relationship)
        .iter()
        .filter_map(|t| Some((attr(t, "Id")?, attr(t, "Target")?)))
        .collect();
    for sheet in tags(&workbook, &sheet_tag) {
        let (Some(name), Some(id)) = (attr(&sheet, "name"), attr(&sheet, "r:id")) else {
            continue;
        };
        let Some(target) = targets.get(&id) else {
            continue;
        };
        let part = match target.strip_prefix('/') {
            Some(absolute) => absolute.to_string(),
            None => format!("xl/{target}"),
        };
        let Some(xml) = text(&part) else {
            continue;
        };
        let hidden: std::collections::HashSet<u32> = row_tag
            .find_iter(&xml)
            .map(|m| m.as_str())
            .filter(|t| t.contains("hidden"))
            .filter(|t| matches!(attr(t, "hidden").as_deref(), Some("1" | "true")))
            .filter_map(|t| attr(t, "r")?.parse::<u32>().ok()?.checked_sub(1))
            .collect();
        if !hidden.is_empty() {
            out.insert(name, hidden);
        }
    }
    out
}

/// The five XML entities, and numeric character references, resolved.
fn xml_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    static ENTITY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")
            .expect("a valid pattern")
    });
    ENTITY
        .replace_all(text, |c: &regex::Captures| {
            let e = &c[1];
            match e {
                "amp" => "&".into(),
                "lt" => "<".into(),
                "gt" => ">".into(),
                "quot" => "\"".into(),
                "apos" => "'".into(),
                _ => {
                    let n = e
                        .strip_prefix("#x")
                        .map_or_else(|| e[1..].parse().ok(), |h| u32::from_str_radix(h, 16).ok());
                    n.and_then(char::from_u32)
                        .map(String::from)
                        .unwrap_or_default()
                }
            }
        })
        .into_owned()
}

/// Refuse a zipped workbook whose shared-string table unpacks to more than `limit`.
fn check_shared_strings(path: &Path, name: &str, limit: u64) -> Result<(), ReadError> {
    let Some(entries) = zip_entries(path) else {
        return Ok(());
    };
    for ZipEntry {
        name: entry,
        unpacked: size,
        ..
    } in entries
    {
        let lower = entry.to_ascii_lowercase();
        if (lower.ends_with("sharedstrings.xml") || lower.ends_with("sharedstrings.bin"))
            && size > limit
        {
            return Err(read_error(
                name,
                format!(
                    "its shared-string table (`{entry}`) unpacks to {size} bytes, more than \
                     the limit of {limit} bytes (`max_shared_strings` under [reader] raises it)"
                ),
            ));
        }
    }
    Ok(())
}

/// Every sheet of an xlsx workbook, each checked first for the area its cells span.
fn all_xlsx<RS: std::io::Read + std::io::Seek>(
    mut wb: Xlsx<RS>,
    max_cells: u64,
) -> Result<Vec<(String, Range<Data>)>, String> {
    let names = wb.sheet_names();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let mut lo: Option<Pos> = None;
        let mut hi: Option<Pos> = None;
        {
            let mut cells = wb.worksheet_cells_reader(&n).map_err(|e| e.to_string())?;
            while let Some(cell) = cells.next_cell().map_err(|e| e.to_string())? {
                // A styled empty cell is in the XML but not in calamine's range.
                if matches!(cell.get_value(), calamine::DataRef::Empty) {
                    continue;
                }
                let (r, c) = cell.get_position();
                lo = Some(lo.map_or((r, c), |(a, b)| (a.min(r), b.min(c))));
                hi = Some(hi.map_or((r, c), |(a, b)| (a.max(r), b.max(c))));
            }
        }
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let span = u64::from(hi.0 - lo.0 + 1) * u64::from(hi.1 - lo.1 + 1);
            if span > max_cells {
                return Err(format!(
                    "sheet `{n}` spans {}{}:{}{} ({span} cells), more than the limit of \
                     {max_cells} (`max_cells` under [reader] raises it)",
                    column_letters(lo.1),
                    lo.0 + 1,
                    column_letters(hi.1),
                    hi.0 + 1
                ));
            }
        }
        let range = wb.worksheet_range(&n).map_err(|e| e.to_string())?;
        out.push((n, range));
    }
    Ok(out)
}

/// What a file holds, from its first bytes, whatever its name says.
#[derive(Debug, PartialEq)]
enum Content {
    /// A zip: xlsx, xlsm, xlsb or ods.
    Zip,
    /// An OLE compound file: xls (BIFF5/8), or an encrypted xlsx.
    Ole,
    /// Plain text, such as CSV.
    Text,
    /// A format calamine cannot read, described.
    Unsupported(&'static str),
    /// Nothing recognised: let the readers try and say why they fail.
    Unknown,
}

/// The lower-case ending of a file name.
fn extension(name: &str) -> String {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// Look at the first 4 KiB of a file.
fn content_of(path: &Path, name: &str) -> Result<Content, ReadError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|source| ReadError::Io {
            path: name.to_string(),
            source,
        })?;
    Ok(classify(&head))
}

fn classify(head: &[u8]) -> Content {
    if head.starts_with(b"PK\x03\x04") {
        return Content::Zip;
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Content::Ole;
    }
    // A BIFF2, 3 or 4 BOF record (0x0009, 0x0209, 0x0409) outside an OLE file: the
    // workbooks of Excel 2.x to 4.x.
    if head.len() >= 4 && matches!(head[..2], [0x09, 0x00] | [0x09, 0x02] | [0x09, 0x04]) {
        return Content::Unsupported("an Excel 2.x to 4.x workbook (BIFF2-4)");
    }
    let text = String::from_utf8_lossy(head);
    let start = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    if start.starts_with("<?xml") && text.contains("urn:schemas-microsoft-com:office:spreadsheet") {
        return Content::Unsupported("an Excel 2003 XML spreadsheet (SpreadsheetML)");
    }
    if start.starts_with("<!doctype html")
        || start.starts_with("<html")
        || start.starts_with("<table")
    {
        return Content::Unsupported("an HTML page (a table saved under a spreadsheet name)");
    }
    let printable = head
        .iter()
        .filter(|&&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
        .count();
    if !head.is_empty() && !head.contains(&0) && printable * 100 >= head.len() * 95 {
        return Content::Text;
    }
    Content::Unknown
}

/// Open the workbook with the reader its original file name calls for.
fn sheets_of(
    path: &Path,
    name: &str,
    max_cells: u64,
    max_shared_strings: u64,
) -> Result<Vec<(String, Range<Data>)>, ReadError> {
    if let Err(source) = File::open(path) {
        return Err(ReadError::Io {
            path: name.to_string(),
            source,
        });
    }
    check_shared_strings(path, name, max_shared_strings)?;
    let ext = extension(name);
    let explain = |e: String| {
        let lower = e.to_lowercase();
        let message = if lower.contains("password") || lower.contains("encrypt") {
            "the workbook is password protected; save an unprotected copy".to_string()
        } else {
            format!(
                "not a readable {} workbook: {e}",
                if ext.is_empty() { "spreadsheet" } else { &ext }
            )
        };
        read_error(name, message)
    };
    fn all<R: Reader<BufReader<File>>>(mut wb: R) -> Result<Vec<(String, Range<Data>)>, String>
    where
        R::Error: std::fmt::Display,
    {
        let names = wb.sheet_names();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let range = wb.worksheet_range(&n).map_err(|e| e.to_string())?;
            out.push((n, range));
        }
        Ok(out)
    }
    let open = |kind: &str| -> Result<Vec<(String, Range<Data>)>, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let rs = BufReader::new(file);
        match kind {
            "xlsx" => open_workbook_from_rs::<Xlsx<_>, _>(rs)
                .map_err(|e| e.to_string())
                .and_then(|wb| all_xlsx(wb, max_cells)),
            "xlsb" => open_workbook_from_rs::<Xlsb<_>, _>(rs)
                .map_err(|e| e.to_string())
                .and_then(all),
            "xls" => open_workbook_from_rs::<Xls<_>, _>(rs)
                .map_err(|e| e.to_string())
                .and_then(all),
            _ => open_workbook_from_rs::<Ods<_>, _>(rs)
                .map_err(|e| e.to_string())
                .and_then(all),
        }
    };
    // The content decides where it is plain: a real workbook under the wrong ending.
    let detected = content_of(path, name)?;
    let ext_kind = match (&detected, ext.as_str()) {
        (Content::Zip, "xls" | "xla") => "xlsx",
        _ => ext.as_str(),
    };
    let result = match ext_kind {
        "xlsx" | "xlsm" | "xlam" => open("xlsx"),
        "xlsb" => open("xlsb"),
        "xls" | "xla" => open("xls"),
        "ods" => open("ods"),
        // No telling ending: try each format.
        _ => ["xlsx", "xls", "ods", "xlsb"]
            .iter()
            .find_map(|k| open(k).ok())
            .ok_or_else(|| "it is none of xlsx, xls, ods or xlsb".to_string()),
    };
    result.map_err(explain)
}

impl ExcelReader {
    /// Open `path` (named `name` in messages) and read the selected sheets.
    pub fn open(config: &ExcelConfig, path: &Path, name: &str) -> Result<Self, ReadError> {
        let shared = config
            .max_shared_strings
            .as_deref()
            .and_then(crate::defs::parse_bytes)
            .unwrap_or(MAX_SHARED_STRINGS);
        let workbook = sheets_of(path, name, config.max_cells.unwrap_or(MAX_CELLS), shared)?;
        let names: Vec<&str> = workbook.iter().map(|(n, _)| n.as_str()).collect();
        let missing = |want: String| {
            read_error(
                name,
                format!("has no sheet {want}; its sheets: {}", names.join(", ")),
            )
        };
        let selected: Vec<usize> = match (&config.sheet, &config.sheets) {
            (_, Some(SheetList::All(_))) => (0..workbook.len()).collect(),
            (_, Some(SheetList::Names(list))) => list
                .iter()
                .map(|s| {
                    names
                        .iter()
                        .position(|n| n == s)
                        .ok_or_else(|| missing(format!("`{s}`")))
                })
                .collect::<Result<_, _>>()?,
            (Some(SheetRef::Name(s)), None) => {
                vec![names
                    .iter()
                    .position(|n| n == s)
                    .ok_or_else(|| missing(format!("`{s}`")))?]
            }
            (Some(SheetRef::Index(i)), None) => {
                if *i >= workbook.len() {
                    return Err(missing(format!("number {i} (counting from 0)")));
                }
                vec![*i]
            }
            (None, None) => vec![0],
        };
        if selected.is_empty() {
            return Err(read_error(name, "has no sheets".into()));
        }
        let block = config
            .range
            .as_deref()
            .map(parse_range)
            .transpose()
            .map_err(|m| read_error(name, m))?;
        let rules = RowRules::of(config).map_err(|(_, m)| read_error(name, m))?;
        let hidden = if config.hidden_rows.as_deref() == Some("keep") {
            Default::default()
        } else {
            hidden_rows_xlsx(path)
        };
        let none = std::collections::HashSet::new();
        let mut tables = Vec::new();
        for i in selected {
            let (sheet, range) = &workbook[i];
            let hidden = hidden.get(sheet).unwrap_or(&none);
            tables.push(table(
                name,
                sheet,
                range,
                config.header_row,
                block,
                &rules,
                hidden,
            )?);
        }
        let first = &tables[0];
        for t in &tables[1..] {
            if t.columns != first.columns {
                return Err(read_error(
                    name,
                    format!(
                        "sheet `{}` has columns [{}] but sheet `{}` has [{}]; `sheets` loads sheets of one shape",
                        t.sheet,
                        t.columns.join(", "),
                        first.sheet,
                        first.columns.join(", ")
                    ),
                ));
            }
        }
        let many = config.sheets.is_some();
        let mut columns = first.columns.clone();
        if many {
            columns.push(SHEET_COLUMN.to_string());
        }
        // The statement period, in the rows above each sheet's header: one period for
        // the unit, so sheets that state different ones are refused, not given the first.
        let period = match &rules.period {
            None => None,
            Some(rule) => {
                let mut found: Option<(Period, &str)> = None;
                for t in &tables {
                    let looked_in = format!("the rows above sheet `{}`'s header", t.sheet);
                    let p = rule
                        .find(&t.preamble, &looked_in)
                        .map_err(|m| read_error(name, m))?;
                    match found {
                        Some((first, sheet)) if first != p => {
                            return Err(read_error(
                                name,
                                format!(
                                    "sheet `{sheet}` states the period {first} and sheet `{}` \
                                     {p}: read each sheet with its own source (`sheet`)",
                                    t.sheet
                                ),
                            ))
                        }
                        Some(_) => {}
                        None => found = Some((p, &t.sheet)),
                    }
                }
                found.map(|(p, _)| p)
            }
        };
        // Types from every cell of every selected sheet.
        let width = first.columns.len();
        let mut kinds = vec![Kind::Empty; width];
        for t in &tables {
            for (_, cells) in &t.rows {
                for (k, c) in kinds.iter_mut().zip(cells) {
                    *k = k.merge(c.kind());
                }
            }
        }
        // A column of date cells with dates typed in as text (hand-kept sheets) is a date
        // column when every text cell is a date in the source's `date_format`.
        let format = ValueFormat {
            period,
            ..config.value_format()
        };
        for (c, kind) in kinds.iter_mut().enumerate() {
            if *kind != Kind::Text {
                continue;
            }
            let cells = || {
                tables
                    .iter()
                    .flat_map(|t| t.rows.iter().map(move |(_, r)| &r[c]))
            };
            let has_date = cells().any(|cell| matches!(cell, Cell::Date(_)));
            let all_dates = || {
                cells().all(|cell| match cell {
                    Cell::Empty | Cell::Date(_) => true,
                    Cell::Text(t) => crate::validate::date_of(t.trim(), &format).is_some(),
                    _ => false,
                })
            };
            if has_date && all_dates() {
                for t in &mut tables {
                    for (_, row) in &mut t.rows {
                        if let Cell::Text(text) = &row[c] {
                            if let Some(d) = crate::validate::date_of(text.trim(), &format) {
                                row[c] = Cell::Date(d);
                            }
                        }
                    }
                }
                *kind = Kind::Date;
            }
        }
        let mut fields: Vec<Field> = tables[0]
            .columns
            .iter()
            .zip(&kinds)
            .map(|(c, k)| Field::new(c, k.arrow(), true))
            .collect();
        if many {
            fields.push(Field::new(SHEET_COLUMN, DataType::Utf8, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let mut batches = VecDeque::new();
        for t in &tables {
            let letters: Vec<String> = t.positions.iter().map(|&p| column_letters(p)).collect();
            for chunk in t.rows.chunks(BATCH_ROWS) {
                let mut arrays: Vec<ArrayRef> =
                    (0..width).map(|c| build(&kinds[c], chunk, c)).collect();
                if many {
                    let mut b = StringBuilder::new();
                    for _ in chunk {
                        b.append_value(&t.sheet);
                    }
                    arrays.push(Arc::new(b.finish()));
                }
                let data = RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| read_error(name, e.to_string()))?;
                batches.push_back(InputBatch {
                    data,
                    rows: chunk.iter().map(|(r, _)| i64::from(*r)).collect(),
                    place: Place::Cells {
                        sheet: t.sheet.clone(),
                        columns: letters.clone(),
                    },
                });
            }
        }
        Ok(ExcelReader {
            columns,
            schema,
            batches,
            period,
        })
    }
}

/// One column of a chunk of rows as an Arrow array of `kind`.
fn build(kind: &Kind, rows: &[(u32, Vec<Cell>)], c: usize) -> ArrayRef {
    let cells = rows.iter().map(|(_, cells)| &cells[c]);
    match kind {
        Kind::Int => {
            let mut b = Int64Builder::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    Cell::Int(i) => b.append_value(*i),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Float => {
            let mut b = Float64Builder::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    Cell::Int(i) => b.append_value(*i as f64),
                    Cell::Float(f) => b.append_value(*f),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Bool => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    Cell::Bool(v) => b.append_value(*v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Date => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch");
            let mut b = Date32Builder::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    Cell::Date(d) => b.append_value((*d - epoch).num_days() as i32),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::DateTime => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    Cell::DateTime(t) => b.append_value(t.and_utc().timestamp_micros()),
                    Cell::Date(d) => b.append_value(
                        d.and_hms_opt(0, 0, 0)
                            .expect("midnight")
                            .and_utc()
                            .timestamp_micros(),
                    ),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Time => {
            let mut b = Time64MicrosecondBuilder::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    Cell::Time(t) => b.append_value(time_micros(t)),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Empty | Kind::Text => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
            for cell in cells {
                match cell.text() {
                    Some(t) => b.append_value(t),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// Whether a row looks like a header: at least two cells, at least half of the table's
/// width filled, and every filled cell text.
fn looks_like_header(cells: &[&Data], width: usize) -> bool {
    let filled: Vec<&&Data> = cells.iter().filter(|c| !matches!(c, Data::Empty)).collect();
    filled.len() >= 2
        && filled.len() * 2 >= width
        && filled
            .iter()
            .all(|c| matches!(c, Data::String(s) if !s.trim().is_empty()))
}

/// The header among `rows`. Rows above the data (the first row more than half filled
/// that holds a number, date or boolean) may hold titles and `Period:` | `dates` or
/// `Balance` | `1234.56` lines: of the header-like rows there, the widest, the first of
/// them on a tie. A sheet of text only has no such row: its first header-like row.
fn find_header<'a>(rows: impl Iterator<Item = (u32, Vec<&'a Data>)>, width: usize) -> Option<u32> {
    let mut first = None;
    let mut widest: Option<(u32, usize)> = None;
    for (r, cells) in rows {
        let filled = cells.iter().filter(|c| !matches!(c, Data::Empty)).count();
        if looks_like_header(&cells, width) {
            first.get_or_insert(r);
            if widest.is_none_or(|(_, most)| filled > most) {
                widest = Some((r, filled));
            }
        } else if filled * 2 > width
            && cells
                .iter()
                .any(|c| !matches!(c, Data::Empty | Data::String(_)))
        {
            return widest.map(|(r, _)| r);
        }
    }
    first
}

/// Find the table of one sheet: its header, columns and data rows.
fn table(
    name: &str,
    sheet: &str,
    range: &Range<Data>,
    header_row: Option<u32>,
    block: Option<(Pos, Pos)>,
    rules: &RowRules,
    hidden: &std::collections::HashSet<u32>,
) -> Result<Table, ReadError> {
    let empty = || read_error(name, format!("sheet `{sheet}` is empty"));
    let (start, end) = match (range.start(), range.end()) {
        (Some(s), Some(e)) => (s, e),
        _ => return Err(empty()),
    };
    let (lo, hi) = match block {
        Some((a, b)) => (
            (a.0.max(start.0), a.1.max(start.1)),
            (b.0.min(end.0), b.1.min(end.1)),
        ),
        None => (start, end),
    };
    if lo.0 > hi.0 || lo.1 > hi.1 {
        return Err(empty());
    }
    let cell = |r: u32, c: u32| range.get_value((r, c)).unwrap_or(&Data::Empty);
    let is_empty =
        |d: &Data| matches!(d, Data::Empty) || matches!(d, Data::String(s) if s.trim().is_empty());
    // Trailing empty rows and columns are not part of the table.
    let last_row = (lo.0..=hi.0)
        .rev()
        .find(|&r| (lo.1..=hi.1).any(|c| !is_empty(cell(r, c))))
        .ok_or_else(empty)?;
    let last_col = (lo.1..=hi.1)
        .rev()
        .find(|&c| (lo.0..=last_row).any(|r| !is_empty(cell(r, c))))
        .ok_or_else(empty)?;
    let width = (last_col - lo.1 + 1) as usize;
    let header = match header_row {
        _ if !rules.header => lo.0,
        Some(h) => {
            let r = h - 1;
            if r < lo.0 || r > last_row {
                return Err(read_error(
                    name,
                    format!("sheet `{sheet}`: `header_row` {h} is outside the table (rows {} to {})", lo.0 + 1, last_row + 1),
                ));
            }
            r
        }
        None => find_header(
            (lo.0..=last_row)
                .filter(|r| !hidden.contains(r))
                .map(|r| (r, (lo.1..=last_col).map(|c| cell(r, c)).collect())),
            width,
        )
        .ok_or_else(|| {
                read_error(
                    name,
                    format!("sheet `{sheet}`: no header row found (a row of column names); set `header_row`"),
                )
            })?,
    };
    // The table starts at the header's first filled cell (title rows often sit further left).
    let first_col = (lo.1..=last_col)
        .find(|&c| !is_empty(cell(header, c)))
        .unwrap_or(lo.1)
        .min(if rules.header { u32::MAX } else { lo.1 });
    let positions: Vec<u32> = (first_col..=last_col).collect();
    let mut columns: Vec<String> = Vec::with_capacity(positions.len());
    let mut names = UniqueNames::default();
    if !rules.header {
        columns = match &rules.columns {
            Some(names) if names.len() != positions.len() => {
                return Err(read_error(
                    name,
                    format!(
                        "sheet `{sheet}` has {} columns but `columns` names {}",
                        positions.len(),
                        names.len()
                    ),
                ))
            }
            Some(names) => names.clone(),
            None => positions
                .iter()
                .map(|&c| format!("column_{}", column_letters(c)))
                .collect(),
        };
    }
    let text_at = |r: u32, c: u32| cell_text(cell(r, c));
    let header_text: Vec<String> = positions.iter().map(|&c| text_at(header, c)).collect();
    for (&c, text) in positions.iter().zip(&header_text).filter(|_| rules.header) {
        let mut col = text.clone();
        if col.is_empty() {
            // Blank or merged header cell: named after where it is.
            col = format!("column_{}", column_letters(c));
        }
        columns.push(names.unique(col));
    }
    let mut rows = Vec::new();
    let first_data = if rules.header { header + 1 } else { header };
    for r in first_data..=last_row {
        // A hidden row (a filtered-out booking, a helper row) is not data.
        if hidden.contains(&r) {
            continue;
        }
        if positions.iter().all(|&c| is_empty(cell(r, c))) {
            if matches!(rules.end, End::Blank) && !rows.is_empty() {
                break;
            }
            continue;
        }
        // A repeated header is not data (compared cell by cell, stopping at the first
        // difference: most rows differ in their first cell).
        let repeated = rules.header
            && positions
                .iter()
                .zip(&header_text)
                .all(|(&c, h)| text_at(r, c) == *h);
        if repeated {
            continue;
        }
        if !rules.skip.is_empty() || matches!(rules.end, End::Pattern(_)) {
            let line = positions
                .iter()
                .map(|&c| text_at(r, c))
                .collect::<Vec<_>>()
                .join("\t");
            if let End::Pattern(end) = &rules.end {
                if end.is_match(&line) {
                    break;
                }
            }
            if rules.skip.iter().any(|p| p.is_match(&line)) {
                continue;
            }
        }
        let mut cells = Vec::with_capacity(positions.len());
        for &c in &positions {
            let converted = convert(cell(r, c)).map_err(|message| ReadError::Cell {
                path: name.to_string(),
                sheet: sheet.to_string(),
                cell: format!("{}{}", column_letters(c), r + 1),
                message,
            })?;
            cells.push(match converted {
                Cell::Text(t) if rules.nulls.contains(t.trim()) => Cell::Empty,
                other => other,
            });
        }
        rows.push((r + 1, cells));
    }
    let preamble = match rules.period {
        None => String::new(),
        Some(_) => (start.0..header)
            .map(|r| {
                (start.1..=end.1)
                    .map(|c| cell_text(cell(r, c)))
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    Ok(Table {
        sheet: sheet.to_string(),
        columns,
        positions,
        rows,
        preamble,
    })
}

impl InputReader for ExcelReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn period(&self) -> Option<Period> {
        self.period
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<InputBatch>, ReadError> {
        Ok(self.batches.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_addresses_round_trip() {
        assert_eq!(parse_cell("C17"), Some((16, 2)));
        assert_eq!(parse_cell("ab1"), Some((0, 27)));
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
        assert_eq!(parse_range("B3:H200"), Ok(((2, 1), (199, 7))));
        assert!(parse_range("H3:B2").is_err());
        assert!(parse_range("B3").is_err());
    }

    #[test]
    fn doubles_keep_what_the_sheet_shows() {
        assert_ne!(1.1 * 3.0, 3.3);
        assert_eq!(excel_precision(1.1 * 3.0), 3.3);
        assert_eq!(excel_precision(0.1 + 0.2), 0.3);
        assert_eq!(excel_precision(-1234.5678), -1234.5678);
        assert_eq!(convert(&Data::Float(3.0)), Ok(Cell::Int(3)));
        assert_eq!(convert(&Data::Float(2.5)), Ok(Cell::Float(2.5)));
    }

    #[test]
    fn kinds_merge_to_the_widest_that_keeps_every_value() {
        assert_eq!(Kind::Int.merge(Kind::Float), Kind::Float);
        assert_eq!(Kind::Empty.merge(Kind::Date), Kind::Date);
        assert_eq!(Kind::Date.merge(Kind::DateTime), Kind::DateTime);
        assert_eq!(Kind::Int.merge(Kind::Text), Kind::Text);
        assert_eq!(Kind::Bool.merge(Kind::Int), Kind::Text);
        assert_eq!(Kind::Time.merge(Kind::Empty), Kind::Time);
        assert_eq!(Kind::Time.merge(Kind::DateTime), Kind::Text);
    }

    /// Issue 10: a time-only cell is a time of day, not a moment on 1899-12-31; a
    /// duration reads as `[h]:mm:ss` shows it, not as a fraction of a day.
    #[test]
    fn time_cells_and_durations() {
        use calamine::{ExcelDateTime, ExcelDateTimeType};
        let time = |h, m, s| NaiveTime::from_hms_opt(h, m, s).expect("valid time");
        let serial = |v: f64, ty, is_1904| Data::DateTime(ExcelDateTime::new(v, ty, is_1904));
        for is_1904 in [false, true] {
            assert_eq!(
                convert(&serial(0.5625, ExcelDateTimeType::DateTime, is_1904)),
                Ok(Cell::Time(time(13, 30, 0)))
            );
        }
        assert_eq!(
            convert(&serial(0.0, ExcelDateTimeType::DateTime, false)),
            Ok(Cell::Time(time(0, 0, 0)))
        );
        assert!(matches!(
            convert(&serial(46027.5625, ExcelDateTimeType::DateTime, false)),
            Ok(Cell::DateTime(_))
        ));
        let workout = (3600.0 + 23.0 * 60.0 + 45.0) / 86_400.0;
        assert_eq!(
            convert(&serial(workout, ExcelDateTimeType::TimeDelta, false)),
            Ok(Cell::Text("01:23:45".into()))
        );
        assert_eq!(
            convert(&serial(1.5, ExcelDateTimeType::TimeDelta, false)),
            Ok(Cell::Text("36:00:00".into()))
        );
        assert_eq!(duration_text(-1_800_000), "-00:30:00");
        assert_eq!(duration_text(1_500), "00:00:01.5");
        let ods = |s: &str| convert(&Data::DurationIso(s.into()));
        assert_eq!(ods("PT13H30M00S"), Ok(Cell::Time(time(13, 30, 0))));
        assert_eq!(ods("PT25H00M00S"), Ok(Cell::Text("25:00:00".into())));
        assert_eq!(ods("P1DT2H"), Ok(Cell::Text("26:00:00".into())));
        assert_eq!(ods("-PT0H30M"), Ok(Cell::Text("-00:30:00".into())));
        assert_eq!(ods("PT0H0M1.5S"), Ok(Cell::Time(time_of_day(1500))));
        assert_eq!(ods("PTXH"), Ok(Cell::Text("PTXH".into())));
        for odd in ["P", "PT", "-P", "-PT", "P1DT-25H", "P-1D"] {
            assert_eq!(ods(odd), Ok(Cell::Text(odd.into())), "{odd}");
        }
        assert_eq!(
            Cell::Time(time_of_day(1500)).text().as_deref(),
            Some("00:00:01.5")
        );
    }

    #[test]
    fn header_detection_skips_title_rows() {
        let title = [
            &Data::String("Card statement".into()),
            &Data::Empty,
            &Data::Empty,
        ];
        let header = [
            &Data::String("Date".into()),
            &Data::String("Amount".into()),
            &Data::String("Memo".into()),
        ];
        let data = [&Data::String("x".into()), &Data::Float(1.0), &Data::Empty];
        assert!(!looks_like_header(&title, 3));
        assert!(looks_like_header(&header, 3));
        assert!(!looks_like_header(&data, 3));
        // A label and its value above the table look like a header, but a narrower one;
        // text rows below the data are not considered.
        let period = [
            &Data::String("Period:".into()),
            &Data::String("01.12.2025 - 31.12.2025".into()),
            &Data::Empty,
        ];
        let later = [
            &Data::String("Total".into()),
            &Data::String("of".into()),
            &Data::String("all".into()),
        ];
        let full = [
            &Data::String("x".into()),
            &Data::Float(1.0),
            &Data::Float(2.0),
        ];
        let rows = [&title, &period, &header, &full, &later, &later];
        let numbered = || rows.iter().enumerate().map(|(i, r)| (i as u32, r.to_vec()));
        assert_eq!(find_header(numbered(), 3), Some(2));
        assert_eq!(find_header(numbered().take(2), 3), Some(1));
        assert_eq!(find_header(numbered().take(1), 3), None);
        // A balance line above a wider table is not its data.
        let balance = [
            &Data::String("Balance".into()),
            &Data::Float(1234.56),
            &Data::Empty,
            &Data::Empty,
        ];
        let wide = [
            &Data::String("Date".into()),
            &Data::String("Text".into()),
            &Data::String("Amount".into()),
            &Data::String("Balance".into()),
        ];
        let row = [
            &Data::String("x".into()),
            &Data::String("y".into()),
            &Data::Float(1.0),
            &Data::Float(2.0),
        ];
        let period4 = [period[0], period[1], &Data::Empty, &Data::Empty];
        let rows4 = [&period4, &balance, &wide, &row];
        let numbered = || {
            rows4
                .iter()
                .enumerate()
                .map(|(i, r)| (i as u32, r.to_vec()))
        };
        assert_eq!(find_header(numbered(), 4), Some(2));
        // Text only, the header with a blank cell: the first header-like row.
        let gap = [wide[0], wide[1], &Data::Empty, wide[3]];
        let text = [later[0], later[1], later[2], later[0]];
        let rows_text = [&gap, &text, &text];
        let numbered = || {
            rows_text
                .iter()
                .enumerate()
                .map(|(i, r)| (i as u32, r.to_vec()))
        };
        assert_eq!(find_header(numbered(), 4), Some(0));
    }
}
