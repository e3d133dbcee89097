//! Extract stage, CSV: delimited text in any of the encodings people's exports use.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use duckdb::arrow::array::{ArrayRef, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use encoding_rs::Encoding;
use encoding_rs_io::DecodeReaderBytesBuilder;
use serde::Deserialize;

use super::{
    pattern, End, InputBatch, InputReader, OpenContext, ReaderKind, UniqueNames, ValueFormat,
    BATCH_ROWS,
};
use crate::error::ReadError;

/// `[reader] type = "csv"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// A file, a folder or a glob, relative to the project.
    pub path: String,
    /// Field delimiter (one character); sniffed from the header line when omitted.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Quote character (one character), `"` by default.
    #[serde(default)]
    pub quote: Option<String>,
    /// Lines of preamble above the header row.
    #[serde(default)]
    pub skip_rows: usize,
    /// `utf-8`, `utf-16`, `windows-1252` (or `latin1`), or any other WHATWG encoding
    /// label (`windows-1250`, `iso-8859-2`); by default a BOM decides, then UTF-8, with
    /// Windows-1252 for any value that is not valid UTF-8.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Decimal separator of numbers (`.` or `,`).
    #[serde(default)]
    pub decimal_separator: Option<String>,
    /// Thousands separator of numbers, removed before parsing.
    #[serde(default)]
    pub thousands_separator: Option<String>,
    /// chrono format of dates, such as `%d.%m.%Y`.
    #[serde(default)]
    pub date_format: Option<super::DateFormats>,
    /// chrono format of timestamps, such as `%d.%m.%Y %H:%M`.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// The year of dates whose `date_format` has none (`"%d %b"` for `05 Nov`).
    #[serde(default)]
    pub year: Option<i32>,
    /// Or a regular expression finding the statement period in the `skip_rows` lines
    /// (groups `start` and/or `end`): such dates take the year that puts them in it.
    #[serde(default)]
    pub period: Option<String>,
    /// chrono format of the period's dates (ISO 8601 by default).
    #[serde(default)]
    pub period_format: Option<String>,
    /// Whether the first line (after `skip_rows`) names the columns (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// The columns' names when `header = false` (default `column_1`, `column_2`, …).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Rows that are not data, wherever they are: regular expressions matched against
    /// the row's text (its fields joined by the delimiter), such as `'^Total'`.
    #[serde(default)]
    pub skip_rows_matching: Vec<String>,
    /// Where the data ends: `"blank"` (the first blank line after data), or a regular
    /// expression: the first row matching it, and every row after it, are not data.
    #[serde(default)]
    pub end: Option<String>,
    /// The largest value a field may hold, in bytes (default 16 MiB). Larger values fail
    /// the file: DuckDB needs several times a value's size in memory to store it.
    #[serde(default)]
    pub max_value_bytes: Option<usize>,
    /// A column that continuation rows add to: a row with a value in that column only
    /// (a description wrapped onto a second line) is appended to the row above.
    #[serde(default)]
    pub continuation: Option<String>,
    /// Lines that start a section (an account's name above its table): regular
    /// expressions matched like `skip_rows_matching`, also against the `skip_rows`
    /// lines; their named groups become columns holding the last such line's values.
    #[serde(default)]
    pub sections: Vec<String>,
    /// Values that stand for no value, such as `["--", "N/A"]` (compared trimmed).
    #[serde(default)]
    pub null_values: Vec<String>,
    /// Rows with another number of fields than the header: an error unless `"pad"`
    /// (short rows get NULLs) or `"join"` (extra fields joined into the last column).
    #[serde(default)]
    pub ragged: Option<Ragged>,
}

/// `ragged` of a CSV source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ragged {
    /// Short rows get NULLs for the fields they lack.
    Pad,
    /// Extra fields are joined, with the delimiter, into the last column.
    Join,
}

pub(crate) fn one_char(
    key: &str,
    value: &Option<String>,
) -> Result<Option<char>, (String, String)> {
    match value.as_deref() {
        None => Ok(None),
        Some(v) => {
            let v = if v == "\\t" { "\t" } else { v };
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Some(c)),
                _ => Err((key.into(), format!("expected one character, got {v:?}"))),
            }
        }
    }
}

/// Resolved encoding choice.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decoding {
    /// BOM, else UTF-8 with a Windows-1252 fallback per value.
    Auto,
    /// This encoding (a BOM still wins).
    Fixed(&'static Encoding),
}

impl ReaderKind for CsvConfig {
    fn path(&self) -> &str {
        &self.path
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["csv", "tsv", "txt"]
    }

    fn check(&self) -> Result<(), (String, String)> {
        CsvConfig::check(self)
    }

    fn value_format(&self) -> ValueFormat {
        CsvConfig::value_format(self)
    }

    fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError> {
        Ok(Box::new(CsvReader::open(self, ctx.path, ctx.name)?))
    }
}

impl Decoding {
    /// `Fixed(e)` when `keep(e)`, else `Auto`.
    fn filter(self, keep: impl Fn(&&'static Encoding) -> bool) -> Decoding {
        match self {
            Decoding::Fixed(e) if keep(&e) => Decoding::Fixed(e),
            _ => Decoding::Auto,
        }
    }
}

impl CsvConfig {
    /// Cross-field rules, as (key, what was expected).
    pub fn check(&self) -> Result<(), (String, String)> {
        let delim = one_char("delimiter", &self.delimiter)?;
        let quote = one_char("quote", &self.quote)?;
        for (key, c) in [("delimiter", delim), ("quote", quote)] {
            if c.is_some_and(|c| !c.is_ascii()) {
                return Err((key.into(), "expected an ASCII character".into()));
            }
        }
        let dec = one_char("decimal_separator", &self.decimal_separator)?;
        let thou = one_char("thousands_separator", &self.thousands_separator)?;
        if dec.is_some() && dec == thou {
            return Err((
                "thousands_separator".into(),
                "must differ from decimal_separator".into(),
            ));
        }
        self.decoding()?;
        super::check_formats(self.date_format.as_ref(), self.timestamp_format.as_deref())?;
        super::period::check_year_options!(self)?;
        if self.period.is_some() && self.skip_rows == 0 {
            return Err((
                "period".into(),
                "is looked for in the lines `skip_rows` skips above the header, and there are none"
                    .into(),
            ));
        }
        for p in &self.skip_rows_matching {
            pattern("skip_rows_matching", p)?;
        }
        Sections::new(&self.sections)?;
        if !self.sections.is_empty() && self.header == Some(false) && self.columns.is_none() {
            return Err((
                "sections".into(),
                "with `header = false`, name the columns (`columns`): a section line must \
                 not decide how many the file has"
                    .into(),
            ));
        }
        self.end()?;
        if let (Some(true) | None, Some(_)) = (self.header, &self.columns) {
            return Err((
                "columns".into(),
                "names the columns of a file without a header; add `header = false`".into(),
            ));
        }
        if self.columns.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(("columns".into(), "expected at least one column name".into()));
        }
        Ok(())
    }

    fn end(&self) -> Result<End, (String, String)> {
        End::parse(self.end.as_deref())
    }

    fn decoding(&self) -> Result<Decoding, (String, String)> {
        let Some(label) = self.encoding.as_deref() else {
            return Ok(Decoding::Auto);
        };
        let enc = match label.to_ascii_lowercase().as_str() {
            "auto" => return Ok(Decoding::Auto),
            "latin1" | "latin-1" | "iso-8859-1" | "cp1252" => Some(encoding_rs::WINDOWS_1252),
            other => Encoding::for_label(other.as_bytes()),
        };
        match enc {
            Some(e) => Ok(Decoding::Fixed(e)),
            None => Err((
                "encoding".into(),
                format!(
                    "unknown encoding `{label}`, expected an encoding label such as utf-8, \
                     utf-16, windows-1252 (latin1), windows-1250, iso-8859-2 or koi8-r"
                ),
            )),
        }
    }

    /// The options a text file named `.xls` is read with by the excel reader: sniffed
    /// delimiter, encoding by BOM or per value, the excel source's date formats.
    pub fn for_text_named_xls(excel: &super::ExcelConfig) -> CsvConfig {
        CsvConfig {
            path: excel.path.clone(),
            // `header_row` counts rows as a spreadsheet shows them: lines, here.
            skip_rows: excel.header_row.map_or(0, |r| r.saturating_sub(1) as usize),
            date_format: excel.date_format.clone(),
            timestamp_format: excel.timestamp_format.clone(),
            year: excel.year,
            period: excel.period.clone(),
            period_format: excel.period_format.clone(),
            header: excel.header,
            columns: excel.columns.clone(),
            skip_rows_matching: excel.skip_rows_matching.clone(),
            null_values: excel.null_values.clone(),
            end: excel.end.clone(),
            ..CsvConfig::default()
        }
    }

    /// How this source writes numbers and dates.
    pub fn value_format(&self) -> ValueFormat {
        let dec = one_char("", &self.decimal_separator).ok().flatten();
        let thou = one_char("", &self.thousands_separator).ok().flatten();
        ValueFormat {
            decimal_separator: dec.unwrap_or('.'),
            thousands_separator: thou,
            date_format: self.date_format.clone(),
            timestamp_format: self.timestamp_format.clone(),
            year: self.year,
            period: None,
        }
    }
}

/// What the first 64 KiB of a file tell before it is decoded.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    /// Lines end in a lone CR (classic Mac OS, some bank exports): no LF at all, some CR.
    cr_only: bool,
}

/// Look at the first 64 KiB of a file, then put it back at its start. Text in UTF-8 or a
/// single-byte encoding never holds a NUL byte; a file that does is binary (an image, a
/// zip, gzip) named like a CSV file: `Err(Ok(n))`, byte `n` (from 1) is NUL. UTF-16 (a
/// BOM, or the `encoding` option) is let through: half its bytes are NUL.
fn inspect_head(file: &mut File, decoding: Decoding) -> Result<Head, Result<u64, std::io::Error>> {
    use std::io::{Seek, SeekFrom};
    let mut head = Vec::with_capacity(1 << 16);
    file.by_ref()
        .take(1 << 16)
        .read_to_end(&mut head)
        .map_err(Err)?;
    file.seek(SeekFrom::Start(0)).map_err(Err)?;
    let found = Head {
        cr_only: memchr::memchr(b'\r', &head).is_some() && memchr::memchr(b'\n', &head).is_none(),
    };
    let utf16 = match decoding {
        Decoding::Fixed(enc) => enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE,
        Decoding::Auto => false,
    } || head.starts_with(&[0xFF, 0xFE])
        || head.starts_with(&[0xFE, 0xFF]);
    match memchr::memchr(0, &head) {
        Some(at) if !utf16 => Err(Ok(at as u64 + 1)),
        _ => Ok(found),
    }
}

/// Reads lone CRs as line feeds, for files whose lines end in CR only (`Head::cr_only`),
/// so that `skip_rows`, line numbers and the parser all see the same lines. A CR inside a
/// quoted value of such a file becomes a line feed too.
struct CrAsLf<R> {
    inner: R,
}

impl<R: Read> Read for CrAsLf<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for b in &mut buf[..n] {
            if *b == b'\r' {
                *b = b'\n';
            }
        }
        Ok(n)
    }
}

/// Physical line numbers by byte offset. The CSV parser's own line count skips blank lines,
/// so the lines are counted here: line breaks are noted as bytes stream past, and dropped
/// once a record beyond them has been read, so memory stays bounded.
#[derive(Debug, Default)]
struct Lines {
    /// (start of the line break, offset of its `\n`) for breaks not yet passed.
    pending: VecDeque<(u64, u64)>,
    /// Line breaks before the first pending one.
    passed: u64,
    /// Bytes read so far.
    offset: u64,
    /// Whether the last byte read was `\r`.
    after_cr: bool,
    /// The bytes from the start of the last record on (what the parser may still be
    /// inside of), and the offset of the first of them.
    tail: Vec<u8>,
    tail_start: u64,
}

impl Lines {
    /// Forget the bytes before `offset` (records the parser is done with).
    fn release(&mut self, offset: u64) {
        if offset > self.tail_start {
            let cut = ((offset - self.tail_start) as usize).min(self.tail.len());
            self.tail.drain(..cut);
            self.tail_start += cut as u64;
        }
    }

    /// At the end of the input: whether the record starting at `start` (whose first line
    /// is `line`) ends inside a quoted value, which the parser silently closes at the end
    /// of the file. Returns the line where that value's quote opened.
    fn unclosed_quote(&self, start: u64, line: u64, quote: u8, delimiter: u8) -> Option<u64> {
        let from = start.saturating_sub(self.tail_start) as usize;
        let bytes = self.tail.get(from..)?;
        // Line breaks before the record's first byte were counted into `line` already.
        let content = bytes.iter().position(|&b| b != b'\n' && b != b'\r')?;
        let (mut line, mut opened) = (line, line);
        let (mut field_start, mut quoted, mut after_quote) = (true, false, false);
        for &b in &bytes[content..] {
            if quoted {
                if after_quote {
                    after_quote = false;
                    if b == quote {
                        continue; // a doubled quote: one quote inside the value
                    }
                    quoted = false; // the value closed; this byte is outside it
                } else {
                    if b == quote {
                        after_quote = true;
                    } else if b == b'\n' {
                        line += 1;
                    }
                    continue;
                }
            }
            match b {
                b'\n' => {
                    line += 1;
                    field_start = true;
                }
                b'\r' => field_start = true,
                _ if b == delimiter => field_start = true,
                _ if b == quote && field_start => {
                    quoted = true;
                    opened = line;
                    field_start = false;
                }
                _ => field_start = false,
            }
        }
        (quoted && !after_quote).then_some(opened)
    }

    /// The 1-based line (counted from where parsing started) of the record the parser
    /// reports at `offset`: the end of the previous record, so blank lines right there
    /// are skipped.
    fn line_of(&mut self, offset: u64) -> u64 {
        let mut cursor = offset;
        // Every break that starts at or before the cursor precedes the record; one the
        // cursor is inside of (or at) moves the cursor past it.
        while let Some(&(start, nl)) = self.pending.front() {
            if start > cursor {
                break;
            }
            self.pending.pop_front();
            self.passed += 1;
            cursor = cursor.max(nl + 1);
        }
        self.passed + 1
    }
}

/// A reader that notes where line breaks are, for `Lines`.
struct LineCounter<R> {
    inner: R,
    lines: Arc<Mutex<Lines>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.lines.lock().expect("line counter lock");
        let base = lines.offset;
        let read = &buf[..n];
        for i in memchr::memchr_iter(b'\n', read) {
            let after_cr = if i == 0 {
                lines.after_cr
            } else {
                read[i - 1] == b'\r'
            };
            let at = base + i as u64;
            lines
                .pending
                .push_back((if after_cr { at - 1 } else { at }, at));
        }
        if let Some(&last) = read.last() {
            lines.after_cr = last == b'\r';
        }
        lines.offset += n as u64;
        lines.tail.extend_from_slice(read);
        Ok(n)
    }
}

/// The decoded text as the parser reads it: the lines the sniffer looked at, then the rest.
type Input = LineCounter<Box<dyn Read + Send>>;

/// Streams a CSV file as batches of text columns, reusing one `ByteRecord`.
pub struct CsvReader {
    name: String,
    reader: csv::Reader<Input>,
    lines: Arc<Mutex<Lines>>,
    columns: Vec<String>,
    schema: SchemaRef,
    record: csv::ByteRecord,
    /// Lines skipped above the header, added to the CSV parser's line numbers.
    line_offset: u64,
    fallback_1252: bool,
    done: bool,
    /// The header as written (trimmed, without empty fields at its end), to drop it
    /// where it is repeated.
    header: Option<Vec<Vec<u8>>>,
    /// The first row of a file without a header, read to count its fields.
    pending: Option<csv::ByteRecord>,
    /// Rows that are not data.
    skip: Vec<regex::Regex>,
    end: End,
    ragged: Option<Ragged>,
    delimiter: u8,
    /// Whether a data row has been read (a blank line ends data only after one).
    seen_data: bool,
    /// The line after the last row read: a row starting later follows blank lines.
    next_line: u64,
    /// Where the last record read starts, and its line, to check the end of the input.
    last_record: (u64, u64),
    quote: u8,
    /// `max_value_bytes`.
    max_value: usize,
    /// The statement period found in the preamble (`period`).
    period: Option<super::period::Period>,
    /// Header fields at its end that are empty (a header line ending in a delimiter).
    nameless_tail: usize,
    /// Empty fields the first data row has beyond the header (a trailing delimiter):
    /// rows with just as many are cut to the header's width.
    trailing: usize,
    /// The file's own columns; `sections`' columns follow them.
    file_width: usize,
    sections: Sections,
    /// The values of the section the rows read are in.
    section_values: Vec<Option<String>>,
    /// The column continuation rows add to (`continuation`), and the last row read,
    /// held until the next shows whether it continues it: (values, line).
    continuation: Option<usize>,
    held: Option<(Vec<Option<String>>, u64)>,
    /// Values that mean "no value" (`null_values`), trimmed.
    nulls: std::collections::HashSet<String>,
}

/// The default of `max_value_bytes`: far above any field of an export, and small enough
/// that storing it stays within the default 96 MB DuckDB memory limit.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

impl CsvReader {
    /// Open `path` and read its header. `name` is how messages name the file.
    pub fn open(config: &CsvConfig, path: &Path, name: &str) -> Result<Self, ReadError> {
        let invalid = |message: String| ReadError::Invalid {
            path: name.to_string(),
            message,
        };
        let decoding = config.decoding().map_err(|(_, m)| invalid(m))?;
        let mut file = File::open(path).map_err(|source| ReadError::Io {
            path: name.to_string(),
            source,
        })?;
        let head = inspect_head(&mut file, decoding).map_err(|e| match e {
            Ok(at) => invalid(format!(
                "is not text: byte {at} is NUL, as in binary files (is it compressed, or \
                 another format named like a CSV file?)"
            )),
            Err(source) => ReadError::Io {
                path: name.to_string(),
                source,
            },
        })?;
        let mut builder = DecodeReaderBytesBuilder::new();
        builder.strip_bom(true);
        // UTF-8, when the source says so, is read as it is: a byte that is not UTF-8 is
        // an error naming its line and column, not a replacement character.
        if let Decoding::Fixed(enc) = decoding.filter(|e| *e != encoding_rs::UTF_8) {
            builder.encoding(Some(enc));
        }
        let decoded: Box<dyn Read + Send> = if head.cr_only {
            Box::new(CrAsLf {
                inner: builder.build(file),
            })
        } else {
            Box::new(builder.build(file))
        };
        let mut input = BufReader::with_capacity(1 << 18, decoded);
        let io = |source| ReadError::Io {
            path: name.to_string(),
            source,
        };
        let mut skipped = Vec::new();
        // The preamble's text, for the statement period.
        let mut preamble = String::new();
        for _ in 0..config.skip_rows {
            skipped.clear();
            if input.read_until(b'\n', &mut skipped).map_err(io)? == 0 {
                return Err(invalid(format!(
                    "ended within the {} preamble lines of `skip_rows`",
                    config.skip_rows
                )));
            }
            let wanted = config.period.is_some() || !config.sections.is_empty();
            if wanted && preamble.len() < SNIFF_BYTES {
                let line = decode(&skipped, matches!(decoding, Decoding::Auto))
                    .unwrap_or_else(|| String::from_utf8_lossy(&skipped));
                preamble.push_str(line.trim_end_matches(['\r', '\n']));
                preamble.push('\n');
            }
        }
        let period = match &config.period {
            None => None,
            Some(p) => {
                let rule = super::period::PeriodRule::new(p, config.period_format.as_deref())
                    .map_err(|(_, m)| invalid(m))?;
                let looked_in = match config.skip_rows {
                    0 => "the lines above the header, and there are none (`skip_rows`, or \
                          `header_row` for a text file named .xls, says how many)"
                        .to_string(),
                    n => format!("the {n} lines above the header"),
                };
                Some(rule.find(&preamble, &looked_in).map_err(invalid)?)
            }
        };
        // The header and the first lines below it, read ahead for the sniffer and then
        // handed to the parser before the rest.
        let mut peeked = Vec::new();
        for _ in 0..SNIFF_LINES {
            // Bounded: a file without line feeds must not be read whole here.
            let room = SNIFF_BYTES.saturating_sub(peeked.len()) as u64;
            if room == 0
                || (&mut input)
                    .take(room)
                    .read_until(b'\n', &mut peeked)
                    .map_err(io)?
                    == 0
            {
                break;
            }
        }
        let quote = one_char("quote", &config.quote)
            .map_err(|(_, m)| invalid(m))?
            .unwrap_or('"') as u8;
        let delimiter =
            match one_char("delimiter", &config.delimiter).map_err(|(_, m)| invalid(m))? {
                Some(c) => c as u8,
                None => sniff_delimiter(&peeked, quote),
            };
        let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(peeked).chain(input));
        let lines = Arc::new(Mutex::new(Lines::default()));
        let counted = LineCounter {
            inner: input,
            lines: lines.clone(),
        };
        let with_header = config.header.unwrap_or(true);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(with_header)
            // Rows of other lengths are this reader's to judge (`ragged`, totals, trailers).
            .flexible(true)
            .delimiter(delimiter)
            .quote(quote)
            .buffer_capacity(1 << 16)
            .from_reader(counted);
        let line_offset = config.skip_rows as u64;
        let fallback_1252 = matches!(decoding, Decoding::Auto);
        let mut pending = None;
        let header = if with_header {
            reader
                .byte_headers()
                .map_err(|e| csv_error(name, line_offset, &lines, e))?
                .clone()
        } else {
            // No header: the columns are named by the source, or counted on the first row.
            let mut first = csv::ByteRecord::new();
            let more = reader
                .read_byte_record(&mut first)
                .map_err(|e| csv_error(name, line_offset, &lines, e))?;
            let names: Vec<String> = match &config.columns {
                Some(names) => names.clone(),
                None => (1..=first.len()).map(|i| format!("column_{i}")).collect(),
            };
            if more {
                // Kept, and given out as the first row of data.
                pending = Some(first);
            }
            csv::ByteRecord::from(names)
        };
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(invalid("has no header row".into()));
        }
        // Decoded text holds no NUL either: UTF-16 (by its BOM) that decodes to NULs is
        // binary data behind two bytes that look like a BOM.
        if header.iter().any(|field| field.contains(&0)) {
            return Err(invalid(
                "is not text: its first line decodes to NUL characters, as binary files do \
                 (is it compressed, or another format named like a CSV file?)"
                    .into(),
            ));
        }
        let mut columns: Vec<String> = Vec::with_capacity(header.len());
        let mut names = UniqueNames::default();
        for (i, raw) in header.iter().enumerate() {
            let text = decode(raw, fallback_1252).ok_or_else(|| ReadError::Malformed {
                path: name.to_string(),
                line: line_offset + 1,
                message: format!("header column {} is not valid UTF-8", i + 1),
            })?;
            let mut col = text.trim().to_string();
            if col.is_empty() {
                col = format!("column_{}", i + 1);
            }
            columns.push(names.unique(col));
        }
        let file_width = columns.len();
        let sections = Sections::new(&config.sections).map_err(|(_, m)| invalid(m))?;
        for name in &sections.names {
            if columns.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                return Err(invalid(format!(
                    "`sections` names a group `{name}`, and the file has a column of that name"
                )));
            }
            columns.push(name.clone());
        }
        // The sections the preamble opens, its lines read as rows.
        let mut section_values = vec![None; sections.names.len()];
        if !sections.patterns.is_empty() {
            for line in preamble.lines() {
                let mut fields = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(delimiter)
                    .quote(quote)
                    .from_reader(line.as_bytes());
                let mut record = csv::StringRecord::new();
                if fields.read_record(&mut record).unwrap_or(false) {
                    let text = record
                        .iter()
                        .collect::<Vec<_>>()
                        .join(&char::from(delimiter).to_string());
                    if let Some(values) = sections.values_after(&text, &section_values) {
                        section_values = values;
                    }
                }
            }
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let continuation = match &config.continuation {
            None => None,
            Some(_) if file_width < 2 => {
                return Err(invalid(
                    "`continuation` needs a file of two columns or more: with one, every row \
                     would continue the first"
                        .into(),
                ))
            }
            Some(c) => Some(
                columns[..file_width]
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| {
                        invalid(format!(
                    "`continuation` names column `{c}`, which it does not have (its columns: {})",
                    columns[..file_width].join(", ")
                ))
                    })?,
            ),
        };
        let skip = config
            .skip_rows_matching
            .iter()
            .map(|p| pattern("skip_rows_matching", p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(_, m)| invalid(m))?;
        Ok(CsvReader {
            name: name.to_string(),
            reader,
            lines,
            columns,
            schema,
            record: csv::ByteRecord::new(),
            line_offset,
            fallback_1252,
            done: false,
            header: with_header.then(|| {
                let mut kept: Vec<Vec<u8>> =
                    header.iter().map(|f| f.trim_ascii().to_vec()).collect();
                while kept.last().is_some_and(|f| f.is_empty()) {
                    kept.pop();
                }
                kept
            }),
            pending,
            skip,
            end: config.end().map_err(|(_, m)| invalid(m))?,
            ragged: config.ragged,
            delimiter,
            seen_data: false,
            next_line: line_offset + 1,
            last_record: (0, line_offset + 1),
            quote,
            max_value: config.max_value_bytes.unwrap_or(MAX_VALUE_BYTES),
            period,
            continuation,
            held: None,
            trailing: 0,
            file_width,
            sections,
            section_values,
            nulls: config
                .null_values
                .iter()
                .map(|v| v.trim().to_string())
                .collect(),
            nameless_tail: if with_header {
                header
                    .iter()
                    .rev()
                    .take_while(|f| f.trim_ascii().is_empty())
                    .count()
            } else {
                0
            },
        })
    }
}

impl InputReader for CsvReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn period(&self) -> Option<super::period::Period> {
        self.period
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<InputBatch>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let mut builders: Vec<StringBuilder> = (0..self.columns.len())
            .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16))
            .collect();
        let mut rows = Vec::with_capacity(BATCH_ROWS);
        while rows.len() < BATCH_ROWS {
            if let Some(first) = self.pending.take() {
                self.record = first;
            } else {
                let more = self
                    .reader
                    .read_byte_record(&mut self.record)
                    .map_err(|e| csv_error(&self.name, self.line_offset, &self.lines, e))?;
                if !more {
                    self.done = true;
                    let (start, line) = self.last_record;
                    let lines = self.lines.lock().expect("line counter lock");
                    if let Some(at) = lines.unclosed_quote(start, line, self.quote, self.delimiter)
                    {
                        return Err(ReadError::Malformed {
                            path: self.name.clone(),
                            line: at,
                            message: "a quoted value opens here and never closes: the file \
                                      ends inside it (cut short, or a quote is missing)"
                                .into(),
                        });
                    }
                    break;
                }
            }
            let byte = self.record.position().map_or(0, |p| p.byte());
            let line =
                self.line_offset + self.lines.lock().expect("line counter lock").line_of(byte);
            self.last_record = (byte, line);
            // The parser passes over blank lines; a gap in the line numbers shows them.
            let after_blank = line > self.next_line;
            self.next_line = line
                + 1
                + self
                    .record
                    .iter()
                    .map(|f| memchr::memchr_iter(b'\n', f).count() as u64)
                    .sum::<u64>();
            if after_blank && matches!(self.end, End::Blank) && self.seen_data {
                self.done = true;
                break;
            }
            // A row of empty fields (`;;;`, as spreadsheets save blank rows, or a line of
            // spaces) is no data; with `end = "blank"` it ends the data.
            if self.record.iter().all(|f| f.trim_ascii().is_empty()) {
                if matches!(self.end, End::Blank) && self.seen_data {
                    self.done = true;
                    break;
                }
                continue;
            }

            match self.row_kind() {
                RowKind::End => {
                    self.done = true;
                    break;
                }
                RowKind::Skip => continue,
                RowKind::Section(values) => {
                    // A section line ends the row held for continuation lines: none
                    // after it belongs to the section before.
                    if let Some((held, at)) = self.held.take() {
                        append_row(&mut builders, &held);
                        rows.push(at as i64);
                    }
                    self.section_values = values;
                    continue;
                }
                RowKind::Data => {}
            }
            if !self.seen_data {
                // Whether rows end in delimiters is decided once, by the first data row:
                // an unquoted comma in one row must not pass for a trailing one.
                let want = self.file_width;
                self.trailing = if self.record.len() > want
                    && self
                        .record
                        .iter()
                        .skip(want)
                        .all(|f| f.trim_ascii().is_empty())
                {
                    self.record.len() - want
                } else {
                    0
                };
            }
            if self.record.len() != self.file_width {
                self.fit(line)?;
            }
            self.seen_data = true;
            if let Some(i) = self.record.iter().position(|f| f.len() > self.max_value) {
                return Err(ReadError::Malformed {
                    path: self.name.clone(),
                    line,
                    message: format!(
                        "column `{}` holds a value of {} bytes, more than the limit of {} \
                         (`max_value_bytes` under [reader] raises it; DuckDB's memory_limit \
                         must then hold several such values)",
                        self.columns.get(i).map_or("?", String::as_str),
                        self.record[i].len(),
                        self.max_value
                    ),
                });
            }
            if let Some(c) = self.continuation {
                // Rows are held back one: the next may continue the last.
                let mut values = self.row_values(line)?;
                let continues = values
                    .iter()
                    .enumerate()
                    .all(|(i, v)| (i == c) == v.is_some());
                values.extend(self.section_values.iter().cloned());
                if let (true, Some((held, _))) = (continues, &mut self.held) {
                    let more = values[c].as_deref().unwrap_or_default();
                    let joined = match &mut held[c] {
                        Some(text) => {
                            text.push(' ');
                            text.push_str(more);
                            text.len()
                        }
                        empty => empty.insert(more.to_string()).len(),
                    };
                    if joined > self.max_value {
                        return Err(ReadError::Malformed {
                            path: self.name.clone(),
                            line,
                            message: format!(
                                "continuation rows add up to a value of {joined} bytes in \
                                 column `{}`, more than the limit of {} (`max_value_bytes`)",
                                self.columns[c], self.max_value
                            ),
                        });
                    }
                } else if let Some((held, at)) = self.held.replace((values, line)) {
                    append_row(&mut builders, &held);
                    rows.push(at as i64);
                }
                continue;
            }
            for (i, (raw, builder)) in self.record.iter().zip(builders.iter_mut()).enumerate() {
                builder.append_option(self.field(i, raw, line)?);
            }
            for (value, builder) in self
                .section_values
                .iter()
                .zip(&mut builders[self.file_width..])
            {
                builder.append_option(value.as_deref());
            }
            rows.push(line as i64);
        }
        if self.done {
            if let Some((held, at)) = self.held.take() {
                append_row(&mut builders, &held);
                rows.push(at as i64);
            }
        }
        // The bytes of records already parsed are not needed for the end-of-input check.
        self.lines
            .lock()
            .expect("line counter lock")
            .release(self.last_record.0);
        if rows.is_empty() {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let data =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| ReadError::Invalid {
                path: self.name.clone(),
                message: e.to_string(),
            })?;
        Ok(Some(InputBatch {
            data,
            rows,
            place: super::Place::Lines,
        }))
    }
}

/// `sections`, compiled: the patterns and the columns their named groups make.
#[derive(Debug, Default)]
struct Sections {
    patterns: Vec<regex::Regex>,
    names: Vec<String>,
}

impl Sections {
    fn new(patterns: &[String]) -> Result<Sections, (String, String)> {
        let mut out = Sections::default();
        for p in patterns {
            let re = pattern("sections", p)?;
            if re.capture_names().flatten().next().is_none() {
                return Err((
                    "sections".into(),
                    format!(
                        "`{p}` needs a named group, such as `(?P<account>.+)`: it becomes a column"
                    ),
                ));
            }
            for name in re.capture_names().flatten() {
                if !out.names.iter().any(|n| n == name) {
                    out.names.push(name.to_string());
                }
            }
            out.patterns.push(re);
        }
        Ok(out)
    }

    /// If `text` starts a section, the section values it gives, from `current` (NULL for
    /// a group of the matching pattern that took no part; other patterns' groups keep
    /// theirs). Rows that start none cost no copy.
    fn values_after(&self, text: &str, current: &[Option<String>]) -> Option<Vec<Option<String>>> {
        let (pattern, caps) = self
            .patterns
            .iter()
            .find_map(|p| p.captures(text).map(|c| (p, c)))?;
        let own: Vec<&str> = pattern.capture_names().flatten().collect();
        let mut values = current.to_vec();
        for (name, value) in self.names.iter().zip(values.iter_mut()) {
            if own.contains(&name.as_str()) {
                *value = caps
                    .name(name)
                    .map(|m| m.as_str().trim())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string);
            }
        }
        Some(values)
    }
}

/// One row of values into the batch's builders.
fn append_row(builders: &mut [StringBuilder], values: &[Option<String>]) {
    for (builder, value) in builders.iter_mut().zip(values) {
        builder.append_option(value.as_deref());
    }
}

/// What a row read is.
enum RowKind {
    Data,
    /// Not data: a repeated header, or a row `skip_rows_matching` names.
    Skip,
    /// The row `end` names: it and every row after it are not data.
    End,
    /// A line `sections` names: not data, the values of the rows below it.
    Section(Vec<Option<String>>),
}

impl CsvReader {
    /// The record's values, decoded: NULL where empty or one of `null_values`.
    fn row_values(&self, line: u64) -> Result<Vec<Option<String>>, ReadError> {
        self.record
            .iter()
            .enumerate()
            .map(|(i, raw)| Ok(self.field(i, raw, line)?.map(|t| t.into_owned())))
            .collect()
    }

    /// Field `i` of the record on `line`, decoded: `None` where empty or one of
    /// `null_values`.
    fn field<'r>(
        &self,
        i: usize,
        raw: &'r [u8],
        line: u64,
    ) -> Result<Option<std::borrow::Cow<'r, str>>, ReadError> {
        let text = decode(raw, self.fallback_1252).ok_or_else(|| ReadError::Malformed {
            path: self.name.clone(),
            line,
            message: format!(
                "column `{}` is not valid UTF-8 (set `encoding` in the source)",
                self.columns[i]
            ),
        })?;
        let trimmed = text.trim();
        // No hashing for sources without `null_values`: this runs for every field.
        let null = trimmed.is_empty() || !self.nulls.is_empty() && self.nulls.contains(trimmed);
        Ok((!null).then_some(text))
    }

    fn row_kind(&self) -> RowKind {
        if let Some(header) = &self.header {
            // Compared without trailing empty fields: a repeated header may have a
            // trailing delimiter the first one has not, or lack it.
            // (`header` is kept without them.) Most rows differ in their first field.
            let repeated = self.record.len() >= header.len()
                && self
                    .record
                    .iter()
                    .zip(header)
                    .all(|(f, h)| f.trim_ascii() == h.as_slice())
                && self
                    .record
                    .iter()
                    .skip(header.len())
                    .all(|f| f.trim_ascii().is_empty());
            if repeated {
                return RowKind::Skip;
            }
        }
        if self.skip.is_empty()
            && !matches!(self.end, End::Pattern(_))
            && self.sections.patterns.is_empty()
        {
            return RowKind::Data;
        }
        let delimiter = char::from(self.delimiter).to_string();
        let text = self
            .record
            .iter()
            .map(|f| decode(f, self.fallback_1252).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(&delimiter);
        if let End::Pattern(end) = &self.end {
            if end.is_match(&text) {
                return RowKind::End;
            }
        }
        if let Some(values) = self.sections.values_after(&text, &self.section_values) {
            return RowKind::Section(values);
        }
        if self.skip.iter().any(|p| p.is_match(&text)) {
            return RowKind::Skip;
        }
        RowKind::Data
    }

    /// Make a row with another number of fields than the header fit, as `ragged` says,
    /// or fail naming its line.
    fn fit(&mut self, line: u64) -> Result<(), ReadError> {
        let (want, have) = (self.file_width, self.record.len());
        // A trailing delimiter (`1;2;3;`) adds empty fields after the last column, and a
        // header ending in one has nameless columns a row may leave out: neither makes a
        // row ragged, and no value is lost or moved.
        if have == want + self.trailing
            && self
                .record
                .iter()
                .skip(want)
                .all(|f| f.trim_ascii().is_empty())
        {
            self.record.truncate(want);
            return Ok(());
        }
        // A continuation row may stop after its one value.
        let continues_short = self.continuation.is_some_and(|c| {
            c < have
                && self
                    .record
                    .iter()
                    .enumerate()
                    .all(|(i, f)| (i == c) != f.trim_ascii().is_empty())
        });
        if have < want && (want - have <= self.nameless_tail || continues_short) {
            for _ in have..want {
                self.record.push_field(b"");
            }
            return Ok(());
        }
        match self.ragged {
            Some(Ragged::Pad) if have < want => {
                for _ in have..want {
                    self.record.push_field(b"");
                }
                Ok(())
            }
            Some(Ragged::Join) if have > want => {
                let mut joined = csv::ByteRecord::new();
                for f in self.record.iter().take(want - 1) {
                    joined.push_field(f);
                }
                let rest: Vec<&[u8]> = self.record.iter().skip(want - 1).collect();
                joined.push_field(&rest.join(&[self.delimiter][..]));
                joined.set_position(self.record.position().cloned());
                self.record = joined;
                Ok(())
            }
            _ => Err(ReadError::Malformed {
                path: self.name.clone(),
                line,
                message: format!(
                    "expected {want} fields like {}, found {have}",
                    if self.header.is_some() {
                        "the header"
                    } else {
                        "the first row"
                    }
                ),
            }),
        }
    }
}

/// UTF-8 text of a field; Windows-1252 when it is not UTF-8 and the fallback is on.
fn decode(raw: &[u8], fallback_1252: bool) -> Option<std::borrow::Cow<'_, str>> {
    match std::str::from_utf8(raw) {
        Ok(s) => Some(std::borrow::Cow::Borrowed(s)),
        Err(_) if fallback_1252 => {
            Some(encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw).0)
        }
        Err(_) => None,
    }
}

/// The most frequent of `, ; \t |` outside quotes in the first line.
/// Lines the delimiter is sniffed from: the header and the lines below it.
const SNIFF_LINES: usize = 20;
/// At most this many bytes of them.
const SNIFF_BYTES: usize = 64 << 10;

/// The delimiter among `,` `;` tab `|` that splits the header into the most columns
/// while every full data line read ahead has as many fields as the header; failing that,
/// the one that splits the header most; `,` when none splits it. Quotes are respected.
fn sniff_delimiter(text: &[u8], quote: u8) -> u8 {
    let candidates = [b',', b';', b'\t', b'|'];
    // The last line read ahead may be cut short (it may hold a quoted line break).
    let complete = text.last() == Some(&b'\n');
    let mut best: Option<((bool, usize), u8)> = None;
    for &d in &candidates {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(d)
            .quote(quote)
            .from_reader(text);
        let mut counts: Vec<usize> = reader
            .byte_records()
            .map_while(Result::ok)
            .filter(|r| !(r.len() == 1 && r[0].is_empty()))
            .map(|r| r.len())
            .collect();
        if !complete && counts.len() > 1 {
            counts.pop();
        }
        let Some(&header) = counts.first() else {
            continue;
        };
        let consistent = counts.iter().all(|&n| n == header);
        let score = (consistent && header > 1, header);
        if header > 1 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, d));
        }
    }
    best.map_or(b',', |(_, d)| d)
}

fn csv_error(name: &str, line_offset: u64, lines: &Mutex<Lines>, err: csv::Error) -> ReadError {
    let line = line_offset
        + lines
            .lock()
            .expect("line counter lock")
            .line_of(err.position().map_or(0, |p| p.byte()));
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => ReadError::Malformed {
            path: name.to_string(),
            line,
            message: format!("expected {expected_len} fields like the header, found {len}"),
        },
        csv::ErrorKind::Io(_) => {
            let message = err.to_string();
            ReadError::Io {
                path: name.to_string(),
                source: std::io::Error::other(message),
            }
        }
        _ => ReadError::Malformed {
            path: name.to_string(),
            line,
            message: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::arrow::array::{Array, AsArray};
    use std::io::Write;

    fn config(path: &str) -> CsvConfig {
        CsvConfig {
            path: path.into(),
            ..CsvConfig::default()
        }
    }

    /// Columns, rows of cells, and the line of each row.
    type Read = (Vec<String>, Vec<Vec<Option<String>>>, Vec<i64>);

    fn read_all(config: &CsvConfig, bytes: &[u8]) -> Result<Read, ReadError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(bytes).expect("write");
        let mut reader = CsvReader::open(config, file.path(), "t.csv")?;
        let columns = reader.columns().to_vec();
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        while let Some(batch) = reader.next_batch()? {
            for r in 0..batch.data.num_rows() {
                rows.push(
                    (0..batch.data.num_columns())
                        .map(|c| {
                            let a = batch.data.column(c).as_string::<i32>();
                            (!a.is_null(r)).then(|| a.value(r).to_string())
                        })
                        .collect(),
                );
            }
            lines.extend(batch.rows);
        }
        Ok((columns, rows, lines))
    }

    #[test]
    fn sniffs_semicolons_and_skips_preamble_with_line_numbers() {
        let mut c = config("x");
        c.skip_rows = 2;
        let (cols, rows, lines) = read_all(
            &c,
            b"Account;123\nExported;today\nDate;Amount\n01.02.2024;1,50\n\n03.02.2024;-2\n",
        )
        .expect("read");
        assert_eq!(cols, ["Date", "Amount"]);
        assert_eq!(rows[1], [Some("03.02.2024".into()), Some("-2".into())]);
        assert_eq!(lines, [4, 6]);
    }

    /// Issue 10: a short header was read as one column (`Nam;V`), and the sniffer looked
    /// at the first bytes only.
    #[test]
    fn sniffs_from_the_header_and_the_lines_below_it() {
        let (cols, rows, _) = read_all(&config("x"), b"Nam;V\nab;1\ncd;2\n").expect("read");
        assert_eq!(cols, ["Nam", "V"]);
        assert_eq!(rows[1], [Some("cd".into()), Some("2".into())]);
        // Commas in the header's text, semicolons between fields: the field counts of the
        // lines below decide.
        let (cols, _, _) = read_all(
            &config("x"),
            b"Datum;Text, lang;Betrag\n01.02.2024;Miete, Februar;-800,00\n02.02.2024;Kaffee;-3,50\n",
        )
        .expect("read");
        assert_eq!(cols, ["Datum", "Text, lang", "Betrag"]);
        // Tabs and pipes, and a quoted delimiter that is not one.
        let (cols, _, _) = read_all(&config("x"), b"a\tb\t\"c;d\"\n1\t2\t3\n").expect("tab");
        assert_eq!(cols, ["a", "b", "c;d"]);
        let (cols, _, _) = read_all(&config("x"), b"a|b\n1|2\n").expect("pipe");
        assert_eq!(cols, ["a", "b"]);
        // The sniffer reads after the preamble, whatever the preamble holds.
        let mut c = config("x");
        c.skip_rows = 1;
        let (cols, _, _) = read_all(&c, b"Konto,Giro,2024,EUR\nA;B\n1;2\n").expect("skip");
        assert_eq!(cols, ["A", "B"]);
    }

    /// Issue 10: with lines ending in CR only, `skip_rows` skipped the whole file and line
    /// numbers were wrong.
    #[test]
    fn cr_only_line_endings_count_lines_and_skip_rows() {
        let mut c = config("x");
        c.skip_rows = 2;
        let (cols, rows, lines) = read_all(
            &c,
            b"Bank\rExport\rDate;Amount\r01.02.2024;1,50\r\r03.02.2024;-2\r",
        )
        .expect("read");
        assert_eq!(cols, ["Date", "Amount"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(lines, [4, 6]);
        let err = read_all(&c, b"Bank\rExport\ra;b\r1;2\r3;4;5\r").expect_err("ragged");
        assert!(err.to_string().contains("line 5"), "{err}");
    }

    /// Issue 10: files without a header.
    #[test]
    fn a_file_without_a_header_is_named_by_the_source_or_counted() {
        let mut c = config("x");
        c.header = Some(false);
        let (cols, rows, lines) =
            read_all(&c, b"2026-01-02;-3,50;Coffee\n2026-01-03;-4,75;Bus\n").expect("read");
        assert_eq!(cols, ["column_1", "column_2", "column_3"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2].as_deref(), Some("Coffee"));
        assert_eq!(lines, [1, 2]);
        c.columns = Some(vec!["date".into(), "amount".into(), "memo".into()]);
        let (cols, rows, _) = read_all(&c, b"2026-01-02,-3.50,Coffee\n").expect("read");
        assert_eq!(cols, ["date", "amount", "memo"]);
        assert_eq!(rows[0][1].as_deref(), Some("-3.50"));
        // `columns` without `header = false` is a definition error.
        let mut bad = config("x");
        bad.columns = Some(vec!["a".into()]);
        assert_eq!(bad.check().map_err(|(k, _)| k), Err("columns".to_string()));
    }

    /// Issue 10: totals, repeated headers and trailers are not data.
    #[test]
    fn rows_that_are_not_data_are_dropped_or_end_the_data() {
        let text = b"Date;Amount;Memo\n\
            2026-01-02;-3,50;Coffee\n\
            Total;-3,50\n\
            Date;Amount;Memo\n\
            2026-01-03;-4,75;Bus\n\
            \n\
            Date downloaded;2026-02-01\n\
            Account;DE00 1234\n";
        let mut c = config("x");
        c.skip_rows_matching = vec!["^Total".into()];
        c.end = Some("^Date downloaded".into());
        let (_, rows, lines) = read_all(&c, text).expect("read");
        assert_eq!(rows.len(), 2);
        assert_eq!(lines, [2, 5]);
        c.end = Some("blank".into());
        let (_, rows, _) = read_all(&c, text).expect("read");
        assert_eq!(rows.len(), 2);
        // A blank row as spreadsheets save it (`;;`) ends the data too.
        let mut blank = config("x");
        blank.end = Some("blank".into());
        let (_, rows, _) = read_all(&blank, b"a;b;c\n1;2;3\n;;\nTrailer;x;y\n").expect("read");
        assert_eq!(rows.len(), 1);
        // Without the options, the total line is a ragged row, named by its line.
        let err = read_all(&config("x"), text).expect_err("ragged");
        assert!(
            err.to_string()
                .contains("line 3: expected 3 fields like the header, found 2"),
            "{err}"
        );
        let mut bad = config("x");
        bad.end = Some("(".into());
        assert_eq!(bad.check().map_err(|(k, _)| k), Err("end".to_string()));
    }

    /// Issue 10: ragged rows, when asked.
    #[test]
    fn ragged_rows_are_padded_or_joined_when_asked() {
        let text = b"a,b,c\n1,2\n3,4,5,6\n";
        let mut c = config("x");
        c.ragged = Some(Ragged::Pad);
        let err = read_all(&c, text).expect_err("a long row is still wrong when padding");
        assert!(err.to_string().contains("line 3"), "{err}");
        let (_, rows, _) = read_all(&c, b"a,b,c\n1,2\n").expect("pad");
        assert_eq!(rows[0], [Some("1".into()), Some("2".into()), None]);
        c.ragged = Some(Ragged::Join);
        let (_, rows, _) = read_all(&c, b"a,b,c\n3,4,5,6\n").expect("join");
        assert_eq!(rows[0][2].as_deref(), Some("5,6"));
    }

    /// Issue 10: OCBC wraps a transaction's description onto a second row (`,,MERCHANT,,`);
    /// Garmin writes `--` for no value.
    #[test]
    fn continuation_rows_and_null_values() {
        let mut c = config("x");
        c.continuation = Some("Description".into());
        c.null_values = vec!["--".into()];
        let text = b"Date,Description,Amount\n01/04/2018,FAST PAYMENT,-5.00\n,to Anna,\n,rent,\n\
                     02/04/2018,SALARY,--\n,ACME PTE LTD,\n03/04/2018,ATM,-20.00\n";
        let (_, rows, lines) = read_all(&c, text).expect("read");
        let described: Vec<(Option<&str>, Option<&str>)> = rows
            .iter()
            .map(|r| (r[1].as_deref(), r[2].as_deref()))
            .collect();
        assert_eq!(
            described,
            [
                (Some("FAST PAYMENT to Anna rent"), Some("-5.00")),
                (Some("SALARY ACME PTE LTD"), None),
                (Some("ATM"), Some("-20.00")),
            ]
        );
        assert_eq!(lines, [2, 5, 7]);
        // Across batches: the held row is given out with the next batch or at the end.
        let mut many = String::from("Date,Description,Amount\n");
        for i in 0..(BATCH_ROWS + 10) {
            many.push_str(&format!("2018-01-01,row {i},1\n,more {i},\n"));
        }
        let (_, rows, _) = read_all(&c, many.as_bytes()).expect("read");
        assert_eq!(rows.len(), BATCH_ROWS + 10);
        assert_eq!(
            rows[BATCH_ROWS][1].as_deref(),
            Some(&*format!("row {BATCH_ROWS} more {BATCH_ROWS}"))
        );
        // Continuation rows may stop after their value; other short rows are ragged.
        let (_, rows, _) = read_all(&c, b"Date,Description,Amount\n1,A,2\n,b\n").expect("short");
        assert_eq!(rows[0][1].as_deref(), Some("A b"));
        assert!(read_all(&c, b"Date,Description,Amount\n1,A,2\n3,b\n").is_err());
        // Joined values are held to `max_value_bytes`.
        c.max_value_bytes = Some(10);
        let err = read_all(&c, b"Date,Description,Amount\n1,A,2\n,bbbbb\n,ccccc\n")
            .expect_err("too long joined");
        assert!(err.to_string().contains("line 4"), "{err}");
        c.max_value_bytes = None;
        c.continuation = Some("Memo".into());
        let err = read_all(&c, text).expect_err("no such column");
        assert!(err.to_string().contains("`Memo`"), "{err}");
        c.continuation = Some("only".into());
        assert!(read_all(&c, b"only\nx\n").is_err());
    }

    /// Issue 10: a Schwab positions export has one table per account, each under a line
    /// naming the account (the first in the preamble); `sections` makes it a column.
    #[test]
    fn sections_carry_a_line_above_each_table_into_its_rows() {
        let mut c = config("x");
        c.skip_rows = 3;
        c.sections = vec![
            r"^(?P<account>[^,]+ XXXX-\d{4})$".into(),
            r"^Positions for .* as of .*, (?P<as_of>\d+/\d+/\d{4})$".into(),
        ];
        c.skip_rows_matching = vec!["^Account Total,".into()];
        let text = b"\"Positions for All-Accounts as of 06:04 PM ET, 11/15/2020\"\n\n\
                     \"Brokerage XXXX-1234\"\n\"Symbol\",\"Quantity\",\n\"AAA\",\"1\",\n\
                     \"Account Total\",\"--\",\n\n\n\"Intelligent XXXX-4321\"\n\
                     \"Symbol\",\"Quantity\",\n\"BBB\",\"2\",\n\"CCC\",\"3\",\n";
        let (cols, rows, lines) = read_all(&c, text).expect("read");
        assert_eq!(cols, ["Symbol", "Quantity", "column_3", "account", "as_of"]);
        let got: Vec<(Option<&str>, Option<&str>, Option<&str>)> = rows
            .iter()
            .map(|r| (r[0].as_deref(), r[3].as_deref(), r[4].as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("AAA"), Some("Brokerage XXXX-1234"), Some("11/15/2020")),
                (
                    Some("BBB"),
                    Some("Intelligent XXXX-4321"),
                    Some("11/15/2020")
                ),
                (
                    Some("CCC"),
                    Some("Intelligent XXXX-4321"),
                    Some("11/15/2020")
                ),
            ]
        );
        assert_eq!(lines, [5, 11, 12]);
        // A group of the matching pattern that takes no part is NULL, not the last value.
        let mut optional = config("x");
        optional.sections = vec![r"^Account (?P<account>\d+)(?: - (?P<owner>.+))?$".into()];
        let (_, rows, _) =
            read_all(&optional, b"a,b\nAccount 1 - Alice\n1,2\nAccount 2\n3,4\n").expect("read");
        assert_eq!(rows[0][3].as_deref(), Some("Alice"));
        assert_eq!(
            (rows[1][2].as_deref(), rows[1][3].as_deref()),
            (Some("2"), None)
        );
        // A section line ends a continuation: the line after it is no part of the row
        // before it.
        optional.continuation = Some("b".into());
        let (_, rows, _) = read_all(&optional, b"a,b\n1,x\nAccount 2\n,y\n").expect("read");
        assert_eq!(rows[0][1].as_deref(), Some("x"));
        assert_eq!(rows.len(), 2);
        // A group named like a column, and a pattern without a group, are refused.
        c.sections = vec!["^(?P<Symbol>.+)$".into()];
        assert!(read_all(&c, text).is_err());
        c.sections = vec!["^Brokerage".into()];
        assert!(c.check().is_err());
    }

    /// Issue 10: a trailing delimiter on data lines (Woolworths Money, DKB) or on the
    /// header only (Lloyds) is not a ragged row; a value beyond the header still is.
    #[test]
    fn trailing_delimiters_do_not_make_rows_ragged() {
        let c = config("x");
        let (cols, rows, _) = read_all(&c, b"a,b,c\n1,2,3,\n4,5,6, \n").expect("data tail");
        assert_eq!(cols, ["a", "b", "c"]);
        assert_eq!(
            rows[1],
            [Some("4".into()), Some("5".into()), Some("6".into())]
        );
        let (cols, rows, _) = read_all(&c, b"a,b,c,\n1,2,3\n4,5,6,\n").expect("header tail");
        assert_eq!(cols, ["a", "b", "c", "column_4"]);
        assert_eq!(
            rows[0],
            [Some("1".into()), Some("2".into()), Some("3".into()), None]
        );
        let err = read_all(&c, b"a,b,c\n1,2,3,x\n").expect_err("a value beyond the header");
        assert!(err.to_string().contains("line 2"), "{err}");
        // Decided by the first data row: an unquoted comma in a later row (`Smith, John`)
        // with an empty last field is no trailing delimiter.
        let err = read_all(&c, b"Date,Payee,Memo\n1,Anna,x\n2,Smith, John,\n")
            .expect_err("shifted values");
        assert!(err.to_string().contains("line 3"), "{err}");
        // A repeated header with or without the trailing delimiter is still dropped.
        let (_, rows, _) = read_all(&c, b"a,b,c\n1,2,3,\na,b,c\n4,5,6,\n").expect("repeat");
        assert_eq!(rows.len(), 2);
        let (_, rows, _) = read_all(&c, b"a,b,c,\n1,2,3\na,b,c\n").expect("repeat");
        assert_eq!(rows.len(), 1);
        let err = read_all(&c, b"a,b,c,\n1,2\n").expect_err("a named column left out");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    /// Issue 12: a 72 MB value aborted the process inside DuckDB.
    #[test]
    fn a_value_over_the_limit_fails_naming_line_column_and_limit() {
        let mut c = config("x");
        c.max_value_bytes = Some(10);
        let err = read_all(&c, b"a,b\n1,short\n2,this value is long\n").expect_err("too big");
        let text = err.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(
            text.contains("column `b` holds a value of 18 bytes, more than the limit of 10"),
            "{text}"
        );
        assert!(text.contains("max_value_bytes"), "{text}");
        c.max_value_bytes = Some(18);
        assert!(read_all(&c, b"a,b\n2,this value is long\n").is_ok());
    }

    /// Issue 12: a file cut inside a quoted last value stored the fragment, and an unclosed
    /// quote swallowed the rows after it into one value.
    #[test]
    fn a_file_ending_inside_quotes_fails_naming_where_the_quote_opened() {
        let cut = b"a,b\n1,\"ok\"\n2,\"a value that goes on\nover lines";
        let err = read_all(&config("x"), cut).expect_err("cut inside quotes");
        assert!(
            err.to_string()
                .contains("line 3: a quoted value opens here"),
            "{err}"
        );
        let swallowed = b"a,b\n1,\"unclosed\n2,x\n3,y\n";
        let err = read_all(&config("x"), swallowed).expect_err("unclosed quote");
        assert!(err.to_string().contains("line 2"), "{err}");
        // Quotes that close, doubled quotes, and quotes inside unquoted values are fine.
        let fine = b"a,b\n1,\"say \"\"hi\"\"\"\n2,5\" screen\n3,\"multi\nline\"";
        let (_, rows, _) = read_all(&config("x"), fine).expect("closed quotes");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][1].as_deref(), Some("5\" screen"));
    }

    #[test]
    fn line_numbers_survive_blank_lines_crlf_and_short_records() {
        let (_, rows, lines) =
            read_all(&config("x"), b"a\r\nx\r\n\r\n\r\ny\r\nz\n\nw\n").expect("read");
        assert_eq!(rows.len(), 4);
        assert_eq!(lines, [2, 5, 6, 8]);
    }

    #[test]
    fn quoted_fields_keep_delimiters_quotes_and_newlines() {
        let (_, rows, lines) =
            read_all(&config("x"), b"a,b\n\"x, \"\"y\"\"\nz\",2\nq,3\n").expect("read");
        assert_eq!(rows[0][0].as_deref(), Some("x, \"y\"\nz"));
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn decodes_utf16_bom_utf8_bom_and_windows_1252() {
        let text = "name,city\nJosé,Köln\n";
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in text.encode_utf16() {
            utf16.extend(unit.to_le_bytes());
        }
        let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
        utf8_bom.extend(text.as_bytes());
        let cp1252 = encoding_rs::WINDOWS_1252.encode(text).0.into_owned();
        for bytes in [utf16, utf8_bom, cp1252] {
            let (cols, rows, _) = read_all(&config("x"), &bytes).expect("read");
            assert_eq!(cols, ["name", "city"]);
            assert_eq!(rows[0], [Some("José".into()), Some("Köln".into())]);
        }
    }

    #[test]
    fn binary_bytes_are_not_read_as_text() {
        // gzip's header holds NUL bytes; so does anything compressed or an image.
        let err = read_all(&config("x"), b"\x1f\x8b\x08\0\0\0\0\0\0\x03a,b\n").expect_err("binary");
        assert!(
            err.to_string().contains("is not text: byte 4 is NUL"),
            "{err}"
        );
        // UTF-16 without a BOM, when the source says so, is text.
        let mut cfg = config("x");
        cfg.encoding = Some("utf-16le".into());
        let utf16: Vec<u8> = "a,b\n1,2\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let (cols, rows, _) = read_all(&cfg, &utf16).expect("utf-16 text");
        assert_eq!(cols, ["a", "b"]);
        assert_eq!(rows[0], [Some("1".into()), Some("2".into())]);
    }

    #[test]
    fn ragged_row_names_the_line() {
        let err = read_all(&config("x"), b"a,b\n1,2\n3,4,5\n").expect_err("ragged");
        let msg = err.to_string();
        assert!(msg.contains("t.csv") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn empty_input_has_no_header() {
        let err = read_all(&config("x"), b"").expect_err("empty");
        assert!(err.to_string().contains("no header"), "{err}");
    }

    #[test]
    fn blank_and_duplicate_headers_get_names() {
        let (cols, _, _) = read_all(&config("x"), b"a,,a\n1,2,3\n").expect("read");
        assert_eq!(cols, ["a", "column_2", "a_2"]);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Issue 12: any bytes through the CSV reader (sniffing, header detection,
            /// decoding, every batch): rows or a typed error, never a panic.
            #[test]
            fn any_bytes_read_or_fail_with_a_typed_error(
                bytes in proptest::collection::vec(
                    prop_oneof![
                        4 => any::<u8>(),
                        4 => prop::sample::select(b"abc123,;\t\"\r\n .-".to_vec()),
                    ],
                    0..600,
                ),
                header in any::<bool>(),
                skip in 0usize..3,
            ) {
                let dir = tempfile::tempdir().expect("dir");
                let path = dir.path().join("x.csv");
                std::fs::write(&path, &bytes).expect("write");
                let config = CsvConfig {
                    path: "x.csv".into(),
                    header: Some(header),
                    skip_rows: skip,
                    ..CsvConfig::default()
                };
                if let Ok(mut reader) = CsvReader::open(&config, &path, "x.csv") {
                    while let Ok(Some(_)) = reader.next_batch() {}
                }
            }

            /// Issue 10's options on any bytes: continuation rows held back, sections,
            /// placeholders, trailing delimiters, padding: every batch is as wide as the
            /// columns, row numbers never go back, or a typed error; never a panic.
            #[test]
            fn any_bytes_with_the_row_options(
                bytes in proptest::collection::vec(
                    prop_oneof![
                        2 => any::<u8>(),
                        6 => prop::sample::select(b"abAS1,,;\"\r\n -".to_vec()),
                    ],
                    0..600,
                ),
                skip in 0usize..3,
                ragged in prop_oneof![Just(None), Just(Some(Ragged::Pad)), Just(Some(Ragged::Join))],
            ) {
                let dir = tempfile::tempdir().expect("dir");
                let path = dir.path().join("x.csv");
                std::fs::write(&path, &bytes).expect("write");
                let config = CsvConfig {
                    path: "x.csv".into(),
                    skip_rows: skip,
                    delimiter: Some(",".into()),
                    sections: vec!["^(?P<section>AS\\w*)$".into()],
                    null_values: vec!["-".into()],
                    skip_rows_matching: vec!["^S".into()],
                    ragged,
                    ..CsvConfig::default()
                };
                let Ok(reader) = CsvReader::open(&config, &path, "x.csv") else {
                    return Ok(());
                };
                let width = reader.columns().len();
                let config = CsvConfig {
                    continuation: reader.columns().get(1).cloned(),
                    ..config
                };
                let mut reader = match CsvReader::open(&config, &path, "x.csv") {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                };
                let mut last = 0;
                while let Ok(Some(batch)) = reader.next_batch() {
                    prop_assert_eq!(batch.data.num_columns(), width);
                    for &row in &batch.rows {
                        // Never back: a held row goes out before the rows after it. (Two
                        // records can share a line: the parser also ends records at a
                        // lone CR, which a file with line feeds does not count.)
                        prop_assert!(row >= last && row >= 1, "row {} after {}", row, last);
                        last = row;
                    }
                }
            }
        }
    }
}
