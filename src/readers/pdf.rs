//! `type = "pdf"`: statements and receipts, rows by a regular expression over the text
//! lines `crate::pdf` extracts.
//!
//! A line is a row when `row` matches all of it (words joined by single spaces); its
//! named groups are the columns, in group order, and `_page` records the page. Lines
//! before the first row are the statement's head. After a row, a line that matches
//! `skip` is dropped; with `continuation`, any other line is a wrapped description and
//! is appended to that column; without it, a line that holds a date or an amount fails
//! the unit, naming its page and line: a transaction is never dropped silently. The
//! position of a row (`row_number`) is its line counted over the whole document.

use std::sync::Arc;

use duckdb::arrow::array::{ArrayRef, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use regex::Regex;
use serde::Deserialize;

use super::period::{Period, PeriodRule};
use super::{
    pattern, InputBatch, InputReader, OpenContext, Place, ReaderKind, ValueFormat, BATCH_ROWS,
};
use crate::error::ReadError;
use crate::pdf::{self, PdfError};

/// `[reader] type = "pdf"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdfConfig {
    /// A file, a folder or a glob, relative to the project.
    pub path: String,
    /// A regular expression that matches a whole row line; its named groups are the
    /// columns.
    pub row: String,
    /// The group that lines under a row which match nothing are appended to.
    #[serde(default)]
    pub continuation: Option<String>,
    /// Lines to drop (page footers, repeated headers, totals).
    #[serde(default)]
    pub skip: Vec<String>,
    /// Pages to read, such as `1-3,5` or `2-`; all when omitted.
    #[serde(default)]
    pub pages: Option<String>,
    /// The secret holding the password of encrypted statements.
    #[serde(default)]
    pub password_secret: Option<String>,
    /// Decimal separator of amounts (`,` for `1.150,00`).
    #[serde(default)]
    pub decimal_separator: Option<String>,
    /// Thousands separator of amounts.
    #[serde(default)]
    pub thousands_separator: Option<String>,
    /// chrono format of dates; ISO 8601 when omitted.
    #[serde(default)]
    pub date_format: Option<super::DateFormats>,
    /// chrono format of timestamps; ISO 8601 when omitted.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// The year of dates whose `date_format` has none (`"%d %b"` for `05 Nov`).
    #[serde(default)]
    pub year: Option<i32>,
    /// Or a regular expression finding the statement period in the document's lines
    /// (groups `start` and/or `end`): such dates take the year that puts them in it.
    #[serde(default)]
    pub period: Option<String>,
    /// chrono format of the period's dates (ISO 8601 by default).
    #[serde(default)]
    pub period_format: Option<String>,
    /// The group holding each row's amount, for the balance checks.
    #[serde(default)]
    pub amount: Option<String>,
    /// The group holding the running balance: each row's must be the previous one plus
    /// its amount.
    #[serde(default)]
    pub balance: Option<String>,
    /// A regular expression finding the opening balance (its group `value`, or its first
    /// group) in the statement's lines.
    #[serde(default)]
    pub opening: Option<String>,
    /// The same for the closing balance: opening plus every amount must be it.
    #[serde(default)]
    pub closing: Option<String>,
}

/// The page column every row has.
pub const PAGE_COLUMN: &str = "_page";

/// Compiled options.
struct Rules {
    row: Regex,
    columns: Vec<String>,
    continuation: Option<usize>,
    skip: Vec<Regex>,
    pages: Vec<(u32, u32)>,
    checks: Checks,
}

/// The balance checks, compiled.
#[derive(Default)]
struct Checks {
    amount: Option<usize>,
    balance: Option<usize>,
    opening: Option<Regex>,
    closing: Option<Regex>,
}

impl PdfConfig {
    fn rules(&self) -> Result<Rules, (String, String)> {
        let row = pattern("row", &format!("^(?:{})$", self.row))?;
        let columns: Vec<String> = row.capture_names().flatten().map(str::to_string).collect();
        if columns.is_empty() {
            return Err((
                "row".into(),
                "needs named groups, such as `(?P<Date>\\d{2}\\.\\d{2}\\.\\d{4})`: they are the columns"
                    .into(),
            ));
        }
        let continuation = match &self.continuation {
            None => None,
            Some(c) => Some(columns.iter().position(|n| n == c).ok_or_else(|| {
                (
                    "continuation".to_string(),
                    format!("`{c}` is not a group of `row` ({})", columns.join(", ")),
                )
            })?),
        };
        let skip = self
            .skip
            .iter()
            .map(|s| pattern("skip", s))
            .collect::<Result<Vec<_>, _>>()?;
        let pages = match &self.pages {
            None => vec![(1, u32::MAX)],
            Some(p) => page_ranges(p).ok_or_else(|| {
                (
                    "pages".to_string(),
                    format!("`{p}` is not a page list such as `1-3,5` or `2-`"),
                )
            })?,
        };
        let group = |key: &str, name: &Option<String>| -> Result<Option<usize>, (String, String)> {
            match name {
                None => Ok(None),
                Some(n) => columns
                    .iter()
                    .position(|c| c == n)
                    .map(Some)
                    .ok_or_else(|| {
                        (
                            key.to_string(),
                            format!("`{n}` is not a group of `row` ({})", columns.join(", ")),
                        )
                    }),
            }
        };
        let value_pattern = |key: &str,
                             text: &Option<String>|
         -> Result<Option<Regex>, (String, String)> {
            match text {
                None => Ok(None),
                Some(t) => {
                    let re = pattern(key, t)?;
                    if re.captures_len() < 2 {
                        return Err((key.to_string(), "needs a group around the amount, such as `(?P<value>[\\d.]+,\\d{2}-?)`".into()));
                    }
                    Ok(Some(re))
                }
            }
        };
        let checks = Checks {
            amount: group("amount", &self.amount)?,
            balance: group("balance", &self.balance)?,
            opening: value_pattern("opening", &self.opening)?,
            closing: value_pattern("closing", &self.closing)?,
        };
        let checked = checks.balance.is_some() || checks.closing.is_some();
        if checked && checks.amount.is_none() {
            return Err((
                "amount".into(),
                "name the group holding each row's amount: the balance checks add it up".into(),
            ));
        }
        if checks.closing.is_some() && checks.opening.is_none() {
            return Err((
                "opening".into(),
                "`closing` is checked against `opening`: give both".into(),
            ));
        }
        Ok(Rules {
            row,
            columns,
            continuation,
            skip,
            pages,
            checks,
        })
    }
}

/// A decimal as an integer of millionths, from text in the source's format (trailing
/// minus, separators, currency signs).
fn millionths(text: &str, format: &ValueFormat) -> Option<i128> {
    // The decimal parser every reader's fields go through, at six places.
    crate::validate::parse_decimal(text, 38, 6, format).ok()
}

/// Millionths as text with the fraction the amounts have (`-1234.50`).
fn shown(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.abs();
    format!("{sign}{}.{:02}", a / 1_000_000, (a % 1_000_000) / 10_000)
}

/// Check every row's running balance, and opening plus the amounts against closing.
fn check_balances(
    rules: &Rules,
    rows: &[(i64, Vec<Option<String>>)],
    pages: &[pdf::Page],
    place: &Place,
    format: &ValueFormat,
    name: &str,
) -> Result<(), ReadError> {
    let Checks {
        amount: Some(amount),
        balance,
        opening,
        closing,
    } = &rules.checks
    else {
        return Ok(());
    };
    let fail = |message: String| ReadError::Invalid {
        path: name.to_string(),
        message,
    };
    let number = |line: i64, column: usize, values: &[Option<String>]| -> Result<i128, ReadError> {
        let text = values[column].as_deref().unwrap_or("");
        millionths(text, format).ok_or_else(|| {
            fail(format!(
                "{}: `{}` in `{}` is not an amount",
                place.describe(line, column),
                crate::validate::shorten(text),
                rules.columns[column]
            ))
        })
    };
    let found = |re: &Regex, last: bool| -> Option<(String, i128)> {
        let mut hits = pages.iter().flat_map(|p| &p.lines).filter_map(|l| {
            let caps = re.captures(&l.text)?;
            let m = caps.name("value").or_else(|| caps.get(1))?;
            Some((l.text.clone(), millionths(m.as_str(), format)?))
        });
        if last {
            hits.next_back()
        } else {
            hits.next()
        }
    };
    let opening = match opening {
        Some(re) => Some(found(re, false).ok_or_else(|| {
            fail("no line matches `opening`: the opening balance is not found".into())
        })?),
        None => None,
    };
    let mut sum: i128 = 0;
    let mut previous = opening.as_ref().map(|(_, v)| *v);
    for (line, values) in rows {
        let a = number(*line, *amount, values)?;
        sum = sum.saturating_add(a);
        if let Some(b) = balance {
            let now = number(*line, *b, values)?;
            if let Some(prev) = previous {
                if prev.saturating_add(a) != now {
                    return Err(fail(format!(
                        "{}: the balance {} is not the previous balance {} plus the amount {} \
                         (that is {}): a row is missing, or was read wrong",
                        place.describe(*line, *b),
                        shown(now),
                        shown(prev),
                        shown(a),
                        shown(prev.saturating_add(a))
                    )));
                }
            }
            previous = Some(now);
        }
    }
    if let (Some(re), Some((_, open))) = (closing, &opening) {
        let (text, close) = found(re, true).ok_or_else(|| {
            fail("no line matches `closing`: the closing balance is not found".into())
        })?;
        if open.saturating_add(sum) != close {
            return Err(fail(format!(
                "`{}`: the closing balance {} is not the opening balance {} plus the {} \
                 amounts ({}): a row is missing, or was read wrong",
                crate::validate::shorten(&text),
                shown(close),
                shown(*open),
                rows.len(),
                shown(open.saturating_add(sum))
            )));
        }
    }
    Ok(())
}

/// `1-3,5,7-` as inclusive ranges.
fn page_ranges(text: &str) -> Option<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().ok()?,
                if b.trim().is_empty() {
                    u32::MAX
                } else {
                    b.trim().parse().ok()?
                },
            ),
            None => {
                let n = part.parse().ok()?;
                (n, n)
            }
        };
        if a == 0 || b < a {
            return None;
        }
        out.push((a, b));
    }
    (!out.is_empty()).then_some(out)
}

impl ReaderKind for PdfConfig {
    fn path(&self) -> &str {
        &self.path
    }

    fn extensions(&self) -> &'static [&'static str] {
        &["pdf"]
    }

    fn check(&self) -> Result<(), (String, String)> {
        let rules = self.rules()?;
        if rules.columns.iter().any(|c| c == PAGE_COLUMN) {
            return Err((
                "row".into(),
                format!("`{PAGE_COLUMN}` is the page column; name the group otherwise"),
            ));
        }
        if let Some(s) = &self.password_secret {
            if !crate::secrets::valid_name(s) {
                return Err((
                    "password_secret".into(),
                    "a secret name: letters, digits and `_`".into(),
                ));
            }
        }
        super::period::check_year_options!(self)?;
        super::json::text_options!(self).check()
    }

    fn value_format(&self) -> ValueFormat {
        ValueFormat {
            year: self.year,
            ..super::json::text_options!(self).value_format()
        }
    }

    fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError> {
        Ok(Box::new(PdfReader::open(self, ctx)?))
    }

    fn secrets(&self) -> Vec<&str> {
        self.password_secret.iter().map(String::as_str).collect()
    }
}

/// Reads the rows of one PDF.
pub struct PdfReader {
    columns: Vec<String>,
    schema: SchemaRef,
    /// Rows as (line over the document, values), the page last.
    rows: Vec<(i64, Vec<Option<String>>)>,
    next: usize,
    place: Place,
    /// The statement period found in the text (`period`).
    period: Option<Period>,
}

impl PdfReader {
    /// Extract the text, then the rows.
    pub fn open(config: &PdfConfig, ctx: &OpenContext<'_>) -> Result<Self, ReadError> {
        let name = ctx.name;
        let invalid = |message: String| ReadError::Invalid {
            path: name.to_string(),
            message,
        };
        let rules = config
            .rules()
            .map_err(|(k, m)| invalid(format!("`{k}`: {m}")))?;
        let bytes = std::fs::read(ctx.path).map_err(|source| ReadError::Io {
            path: name.to_string(),
            source,
        })?;
        let doc = match pdf::open(&bytes, None) {
            Err(PdfError::NeedsPassword) => {
                let Some(secret) = &config.password_secret else {
                    return Err(invalid(
                        "is encrypted with a password: name the secret that holds it with \
                         `password_secret`"
                            .into(),
                    ));
                };
                let password = ctx
                    .secrets
                    .get(secret)
                    .map_err(|source| ReadError::Secret {
                        path: name.to_string(),
                        what: "is encrypted with a password".into(),
                        source,
                    })?;
                pdf::open(&bytes, Some(password.expose())).map_err(|e| match e {
                    PdfError::WrongPassword => invalid(format!(
                        "the password in secret `{secret}` does not open it"
                    )),
                    other => invalid(other.to_string()),
                })?
            }
            other => other.map_err(|e| invalid(e.to_string()))?,
        };
        let pages = pdf::pages(&doc).map_err(|e| invalid(e.to_string()))?;
        if pages.iter().all(|p| p.lines.is_empty()) {
            return Err(invalid(
                "no text layer (scanned?): its pages are images; run OCR on it first".into(),
            ));
        }
        let period = match &config.period {
            None => None,
            Some(p) => {
                let rule = PeriodRule::new(p, config.period_format.as_deref())
                    .map_err(|(k, m)| invalid(format!("`{k}`: {m}")))?;
                let text: Vec<&str> = pages
                    .iter()
                    .flat_map(|p| &p.lines)
                    .map(|l| l.text.as_str())
                    .collect();
                Some(rule.find(&text.join("\n"), "its text").map_err(invalid)?)
            }
        };
        let mut columns = rules.columns.clone();
        columns.push(PAGE_COLUMN.to_string());
        let (rows, page_starts) = rows(&rules, &pages, name)?;
        let place = Place::Pages {
            page_starts: Arc::new(page_starts),
        };
        check_balances(&rules, &rows, &pages, &place, &config.value_format(), name)?;
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        Ok(PdfReader {
            columns,
            schema,
            rows,
            next: 0,
            place,
            period,
        })
    }
}

/// A date (`31.12.2026`, `12/31/26`, `2026-12-31`, `31.12.`) or an amount (`1.150,00`,
/// `-4.05`, `12,00-`) somewhere in a line.
fn holds_date_or_amount(text: &str) -> bool {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"\b\d{1,2}[./-]\d{1,2}[./-](\d{2}|\d{4})\b|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}\.\d{1,2}\.(\s|$)|\d[\d.,' ]*[.,]\d{2}\b",
        )
        .expect("a valid pattern")
    })
    .is_match(text)
}

type Rows = (Vec<(i64, Vec<Option<String>>)>, Vec<i64>);

/// What the rules make of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Before the first row: the statement's head.
    Head,
    Row,
    Skip,
    /// Appended to the row above it.
    Continuation,
    /// After a row, matching nothing, holding no date or amount: dropped.
    Dropped,
    /// After a row, matching nothing, holding a date or an amount: fails the unit.
    Lost,
    /// Glyphs without Unicode: fails the unit.
    Unmapped,
    /// On a page `pages` leaves out.
    NotRead,
}

impl Mark {
    /// How `inspect` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Head => "head",
            Mark::Row => "row",
            Mark::Skip => "skip",
            Mark::Continuation => "cont",
            Mark::Dropped => "-",
            Mark::Lost => "LOST",
            Mark::Unmapped => "NOMAP",
            Mark::NotRead => "page",
        }
    }
}

fn mark(rules: &Rules, line: &pdf::Line, after_row: bool) -> Mark {
    if rules.skip.iter().any(|s| s.is_match(&line.text)) {
        Mark::Skip
    } else if line.unmapped.is_some() {
        Mark::Unmapped
    } else if rules.row.is_match(&line.text) {
        Mark::Row
    } else if !after_row {
        Mark::Head
    } else if rules.continuation.is_some() {
        Mark::Continuation
    } else if holds_date_or_amount(&line.text) {
        Mark::Lost
    } else {
        Mark::Dropped
    }
}

/// The mark of every line of every page, as a sync would treat it.
pub fn marks(config: &PdfConfig, pages: &[pdf::Page]) -> Result<Vec<Vec<Mark>>, (String, String)> {
    let rules = config.rules()?;
    let mut after_row = false;
    Ok(pages
        .iter()
        .map(|page| {
            let wanted = rules
                .pages
                .iter()
                .any(|(a, b)| (*a..=*b).contains(&page.number));
            page.lines
                .iter()
                .map(|line| {
                    if !wanted {
                        return Mark::NotRead;
                    }
                    let m = mark(&rules, line, after_row);
                    after_row |= m == Mark::Row;
                    m
                })
                .collect()
        })
        .collect())
}

/// The rows of a document's lines; and the first line number of each page.
fn rows(rules: &Rules, pages: &[pdf::Page], name: &str) -> Result<Rows, ReadError> {
    let mut out: Vec<(i64, Vec<Option<String>>)> = Vec::new();
    let mut starts = Vec::with_capacity(pages.len());
    let mut line_no = 0i64;
    for page in pages {
        starts.push(line_no + 1);
        let wanted = rules
            .pages
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&page.number));
        for (i, line) in page.lines.iter().enumerate() {
            line_no += 1;
            if !wanted {
                continue;
            }
            let at = || format!("page {} line {}", page.number, i + 1);
            let fail = |message: String| ReadError::Invalid {
                path: name.to_string(),
                message: format!("{}: {message}", at()),
            };
            match mark(rules, line, !out.is_empty()) {
                Mark::Row => {
                    let caps = rules.row.captures(&line.text).expect("the row matched");
                    let mut values: Vec<Option<String>> = rules
                        .columns
                        .iter()
                        .map(|c| caps.name(c).map(|m| m.as_str().trim().to_string()))
                        .collect();
                    values.push(Some(page.number.to_string()));
                    out.push((line_no, values));
                }
                Mark::Continuation => {
                    let (Some(c), Some((_, values))) = (rules.continuation, out.last_mut()) else {
                        continue;
                    };
                    match &mut values[c] {
                        Some(v) if !v.is_empty() => {
                            v.push(' ');
                            v.push_str(&line.text);
                        }
                        slot => *slot = Some(line.text.clone()),
                    }
                }
                Mark::Unmapped => {
                    return Err(fail(format!(
                        "glyphs of font {} have no Unicode mapping (no ToUnicode, no usable \
                         encoding); skip the line with `skip`, or export the statement again",
                        line.unmapped.as_deref().unwrap_or("?")
                    )))
                }
                Mark::Lost => {
                    return Err(fail(format!(
                        "`{}` matches neither `row` nor `skip` but holds a date or an amount; \
                         a transaction is never dropped silently (extend `row`, or `skip` the \
                         line)",
                        crate::validate::shorten(&line.text)
                    )))
                }
                Mark::Head | Mark::Skip | Mark::Dropped | Mark::NotRead => {}
            }
        }
    }
    Ok((out, starts))
}

impl InputReader for PdfReader {
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
        if self.next >= self.rows.len() {
            return Ok(None);
        }
        let end = (self.next + BATCH_ROWS).min(self.rows.len());
        let chunk = &self.rows[self.next..end];
        self.next = end;
        let mut builders: Vec<StringBuilder> = (0..self.columns.len())
            .map(|_| StringBuilder::new())
            .collect();
        for (_, values) in chunk {
            for (b, v) in builders.iter_mut().zip(values) {
                b.append_option(v.as_deref());
            }
        }
        let arrays: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let data =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| ReadError::Invalid {
                path: String::new(),
                message: format!("cannot build a batch: {e}"),
            })?;
        Ok(Some(InputBatch {
            data,
            rows: chunk.iter().map(|(n, _)| *n).collect(),
            place: self.place.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> pdf::Line {
        pdf::Line {
            text: text.into(),
            x: 0.0,
            y: 0.0,
            unmapped: None,
        }
    }

    fn config(continuation: Option<&str>) -> PdfConfig {
        PdfConfig {
            path: "in".into(),
            row: r"(?P<Date>\d{2}\.\d{2}\.\d{4}) (?P<Text>.+?) (?P<Amount>-?[\d.]+,\d{2}-?)".into(),
            continuation: continuation.map(str::to_string),
            skip: vec![r"^Seite \d+".into()],
            pages: None,
            password_secret: None,
            decimal_separator: Some(",".into()),
            thousands_separator: Some(".".into()),
            date_format: None,
            timestamp_format: None,
            year: None,
            period: None,
            period_format: None,
            amount: None,
            balance: None,
            opening: None,
            closing: None,
        }
    }

    fn page(number: u32, lines: &[&str]) -> pdf::Page {
        pdf::Page {
            number,
            lines: lines.iter().map(|l| line(l)).collect(),
        }
    }

    #[test]
    fn rows_continuations_and_pages() {
        let pages = [
            page(
                1,
                &[
                    "Kontoauszug 3/2026",
                    "01.03.2026 Miete Mai 1.150,00-",
                    "Wohnung Nord",
                    "Seite 1 von 2",
                ],
            ),
            page(2, &["02.03.2026 Gehalt 3.000,00"]),
        ];
        let rules = config(Some("Text")).rules().expect("rules");
        let (rows, starts) = rows(&rules, &pages, "a.pdf").expect("rows");
        assert_eq!(starts, [1, 5]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(
            rows[0].1,
            [
                Some("01.03.2026".into()),
                Some("Miete Mai Wohnung Nord".into()),
                Some("1.150,00-".into()),
                Some("1".into())
            ]
        );
        assert_eq!(rows[1].0, 5);
    }

    #[test]
    fn a_line_with_an_amount_that_matches_nothing_fails_naming_its_place() {
        let pages = [page(
            1,
            &["01.03.2026 Miete 1.150,00-", "Übertrag 2.000,00"],
        )];
        let rules = config(None).rules().expect("rules");
        let e = rows(&rules, &pages, "a.pdf").expect_err("refused");
        assert!(
            e.to_string()
                .contains("page 1 line 2: `Übertrag 2.000,00` matches neither"),
            "{e}"
        );
        // A line without a date or an amount is dropped.
        let pages = [page(1, &["01.03.2026 Miete 1.150,00-", "Vielen Dank"])];
        assert_eq!(rows(&rules, &pages, "a.pdf").expect("rows").0.len(), 1);
    }

    #[test]
    fn amounts_as_statements_print_them() {
        let de = config(None).value_format();
        assert_eq!(millionths("1.150,00-", &de), Some(-1_150_000_000));
        assert_eq!(millionths("-0,05", &de), Some(-50_000));
        assert_eq!(millionths("12", &de), Some(12_000_000));
        assert_eq!(millionths("abc", &de), None);
        assert_eq!(shown(-1_150_500_000), "-1150.50");
    }

    #[test]
    fn options_are_checked() {
        let mut c = config(Some("Nope"));
        assert!(c
            .check()
            .expect_err("continuation")
            .1
            .contains("not a group"));
        c.continuation = None;
        c.row = r"\d+ .*".into();
        assert!(c.check().expect_err("groups").1.contains("named groups"));
        assert_eq!(
            page_ranges("1-3, 5,7-"),
            Some(vec![(1, 3), (5, 5), (7, u32::MAX)])
        );
        assert_eq!(page_ranges("3-1"), None);
        let mut c = config(None);
        c.balance = Some("Amount".into());
        assert!(c.check().expect_err("amount").0 == "amount");
        c.amount = Some("Amount".into());
        c.closing = Some("Neuer Kontostand (.+)".into());
        assert!(c.check().expect_err("opening").0 == "opening");
        assert!(holds_date_or_amount("Saldo 1.234,56"));
        assert!(holds_date_or_amount("am 31.12."));
        assert!(!holds_date_or_amount("Seite 2 von 3"));
    }
}
