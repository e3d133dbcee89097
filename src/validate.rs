//! Validate stage: an input's columns against its source's tags, then each batch's values
//! against the tags' types. Produces the typed batches the vault writer stores.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int64Builder, StringArray, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;

use crate::defs::{Definitions, FieldType, Part, Required, Source};
use crate::error::ContractError;
use crate::readers::{InputBatch, ValueFormat};

/// Column names the vault uses in every satellite; an input may not use them.
pub const VAULT_COLUMNS: [&str; 7] = [
    "hk",
    "load_ts",
    "hashdiff",
    "record_source",
    "file_hash",
    "row_number",
    "run_id",
];

/// One payload column of a satellite.
#[derive(Debug, Clone, PartialEq)]
pub struct SatColumn {
    /// The source column name.
    pub name: String,
    /// Its type in the satellite.
    pub ty: FieldType,
    /// The tag field it carries, if any.
    pub field: Option<Required>,
}

/// What an input must satisfy, and the satellite schema it loads into.
#[derive(Debug, Clone)]
pub struct Contract {
    /// Payload columns in input order.
    pub columns: Vec<SatColumn>,
    /// Indices (into `columns`) of the primary key, in declared order; `None` = content key.
    pub key: Option<Vec<usize>>,
    /// Arrow schema of typed batches.
    pub schema: SchemaRef,
    /// Strict sign columns (`positive` given): each field's own, even when two fields
    /// share one sign column.
    signs: Vec<SignRule>,
}

/// A sign column whose every value must be in `negative` or `positive`.
#[derive(Debug, Clone)]
struct SignRule {
    /// Index of the sign column.
    column: usize,
    field: String,
    negative: Vec<String>,
    positive: Vec<String>,
    /// Both lists as `sign_key` compares them, made once.
    known: Vec<String>,
}

impl Contract {
    /// Check an input's columns against the source and its tags.
    pub fn new(
        defs: &Definitions,
        source: &Source,
        input: &Schema,
        file: &str,
    ) -> Result<Contract, ContractError> {
        let input_columns: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
        let input_columns = input_columns.as_slice();
        let required = defs.required(source);
        for req in &required {
            if !input_columns.contains(&req.column) {
                let part = match &req.part {
                    None => String::new(),
                    Some(Part::Credit) => " (its credit)".into(),
                    Some(Part::Debit) => " (its debit)".into(),
                    Some(Part::Sign) => " (its sign)".into(),
                    Some(Part::Signed { .. } | Part::Negated) => " (its amount)".into(),
                };
                return Err(ContractError::MissingField {
                    what: format!("tag `{}` field `{}`{part}, column", req.tag, req.field),
                    field: req.column.clone(),
                    file: file.to_string(),
                    hint: hint(&req.column, input_columns),
                });
            }
        }
        if let Some(clash) = input_columns
            .iter()
            .find(|c| VAULT_COLUMNS.contains(&c.as_str()))
        {
            return Err(ContractError::BadValue {
                file: file.to_string(),
                at: "header".into(),
                column: clash.clone(),
                message: "the column name is reserved for the vault's own columns".into(),
            });
        }
        // A tag types its fields; `[columns]` types others; else the reader's type stands
        // (text for text formats, what every cell allows for spreadsheets).
        let columns: Vec<SatColumn> = input
            .fields()
            .iter()
            .map(|f| {
                let name = f.name();
                let field = required.iter().find(|r| &r.column == name).cloned();
                let ty = field
                    .as_ref()
                    .map(|f| f.ty)
                    .or_else(|| source.columns.get(name).copied())
                    .or_else(|| FieldType::from_arrow(f.data_type()))
                    .unwrap_or(FieldType::Text);
                SatColumn {
                    name: name.clone(),
                    ty,
                    field,
                }
            })
            .collect();
        let key = match &source.primary_key {
            None => None,
            Some(pk) => {
                let mut idx = Vec::with_capacity(pk.len());
                for col in pk {
                    match columns.iter().position(|c| &c.name == col) {
                        Some(i) => idx.push(i),
                        None => {
                            return Err(ContractError::MissingField {
                                what: "primary key column".into(),
                                field: col.clone(),
                                file: file.to_string(),
                                hint: hint(col, input_columns),
                            })
                        }
                    }
                }
                Some(idx)
            }
        };
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow(), true))
                .collect::<Vec<_>>(),
        ));
        // Every derived field with `positive`, found among all its parts (a column that
        // two fields share keeps one part in `columns`).
        let signs = required
            .iter()
            .filter_map(|r| match &r.part {
                Some(Part::Signed { negative, positive }) if !positive.is_empty() => {
                    let sign = required
                        .iter()
                        .find(|s| s.field == r.field && s.part == Some(Part::Sign))?;
                    Some(SignRule {
                        column: columns.iter().position(|c| c.name == sign.column)?,
                        field: r.field.clone(),
                        negative: negative.clone(),
                        positive: positive.clone(),
                        known: negative
                            .iter()
                            .chain(positive)
                            .map(|v| crate::defs::sign_key(v))
                            .collect(),
                    })
                }
                _ => None,
            })
            .collect();
        Ok(Contract {
            columns,
            key,
            schema,
            signs,
        })
    }

    /// Cast one batch of input to the satellite's types. Any value that is null where the
    /// tag forbids it, or does not parse as its type, fails the whole input unit.
    pub fn cast(
        &self,
        file: &str,
        batch: &InputBatch,
        format: &ValueFormat,
    ) -> Result<RecordBatch, ContractError> {
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let input = batch.data.column(i);
            let must_have = col.field.as_ref().is_some_and(|f| !f.nullable)
                || self.key.as_ref().is_some_and(|k| k.contains(&i));
            let bad = |row: usize, message: String| ContractError::BadValue {
                file: file.to_string(),
                at: batch.place.describe(batch.rows[row], i),
                column: col.name.clone(),
                message,
            };
            if must_have && input.null_count() > 0 {
                let row = (0..input.len()).find(|&r| input.is_null(r)).unwrap_or(0);
                let what = if col.field.is_some() {
                    "is empty, but the tag requires a value"
                } else {
                    "is empty, but it is part of the primary key"
                };
                return Err(bad(row, what.into()));
            }
            let array = match input.data_type() {
                t if *t == col.ty.arrow() => input.clone(),
                DataType::Utf8 => parse_column(input.as_string::<i32>(), col.ty, format)
                    .map_err(|(row, msg)| bad(row, msg))?,
                // A typed value of another type (a spreadsheet number for a decimal field,
                // a date for a timestamp) goes through its canonical text, so the
                // conversion is exact and a value that does not fit is named.
                _ => parse_column(
                    &canonical_text(input.as_ref()),
                    col.ty,
                    &ValueFormat::default(),
                )
                .map_err(|(row, msg)| bad(row, msg))?,
            };
            arrays.push(array);
        }
        self.check_credit_debit(file, batch)?;
        self.check_signs(file, batch, &arrays)?;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| ContractError::BadValue {
            file: file.to_string(),
            at: batch
                .place
                .describe(batch.rows.first().copied().unwrap_or(0), 0),
            column: String::new(),
            message: e.to_string(),
        })
    }
}

impl Contract {
    /// With `positive`, every sign of a signed amount is in `negative` or `positive`
    /// (compared trimmed, ignoring case; an empty sign is `""`): a sign nobody listed
    /// does not count as positive.
    fn check_signs(
        &self,
        file: &str,
        batch: &InputBatch,
        typed: &[ArrayRef],
    ) -> Result<(), ContractError> {
        for rule in &self.signs {
            let SignRule {
                column: at,
                field,
                negative,
                positive,
                known,
            } = rule;
            // The sign as stored (a text column), compared as the view compares it.
            let column = typed[*at].as_string::<i32>();
            for row in 0..column.len() {
                let written = if column.is_null(row) {
                    ""
                } else {
                    column.value(row)
                };
                // As `sign_key` compares, without a lower-cased copy a row.
                let sign = written.trim_matches(crate::defs::SIGN_SPACE);
                if !known.iter().any(|k| k.eq_ignore_ascii_case(sign)) {
                    return Err(ContractError::BadValue {
                        file: file.to_string(),
                        at: batch.place.describe(batch.rows[row], *at),
                        column: self.columns[*at].name.clone(),
                        message: format!(
                            "sign {:?} is in neither `negative` {negative:?} nor `positive` \
                             {positive:?} of field `{field}`",
                            shorten(written),
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// A required field derived from credit and debit needs one of them in every row.
    fn check_credit_debit(&self, file: &str, batch: &InputBatch) -> Result<(), ContractError> {
        let parts: Vec<(usize, &Required)> = self
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.field.as_ref().map(|f| (i, f)))
            .filter(|(_, f)| {
                matches!(f.part, Some(Part::Credit | Part::Debit)) && !f.field_nullable
            })
            .collect();
        let mut fields: Vec<&str> = parts.iter().map(|(_, f)| f.field.as_str()).collect();
        fields.dedup();
        for field in fields {
            let cols: Vec<usize> = parts
                .iter()
                .filter(|(_, f)| f.field == field)
                .map(|(i, _)| *i)
                .collect();
            let empty = (0..batch.data.num_rows())
                .find(|&row| cols.iter().all(|&c| batch.data.column(c).is_null(row)));
            if let Some(row) = empty {
                let names: Vec<&str> = cols
                    .iter()
                    .map(|&c| self.columns[c].name.as_str())
                    .collect();
                return Err(ContractError::BadValue {
                    file: file.to_string(),
                    at: batch.place.describe(batch.rows[row], cols[0]),
                    column: names.join("` and `"),
                    message: format!(
                        "{} empty, but tag field `{field}` needs one of them",
                        if names.len() > 1 { "are both" } else { "is" }
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A typed column as the canonical text the hash recipe uses.
fn canonical_text(array: &dyn Array) -> StringArray {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 8);
    let mut cell = Vec::new();
    for row in 0..array.len() {
        cell.clear();
        if crate::canonical::canonical_into(array, row, &mut cell) {
            out.append_value(std::str::from_utf8(&cell).expect("canonical text is UTF-8"));
        } else {
            out.append_null();
        }
    }
    out.finish()
}

/// ", closest column: `X`" when an input column looks like a rename of `wanted`.
/// Close means a small edit distance, or one name containing the other (an export that
/// drops or adds a unit, like `Betrag (EUR)` becoming `Betrag`).
fn hint(wanted: &str, columns: &[String]) -> String {
    // One column whose name holds a delimiter: the file was split at the wrong one.
    if let [only] = columns {
        if let Some(d) = [';', '\t', '|', ',']
            .into_iter()
            .find(|&d| only.contains(d))
        {
            let shown = if d == '\t' {
                "\\t".to_string()
            } else {
                d.to_string()
            };
            return format!(
                " (found one column, `{}`; is the delimiter `{shown}`? Set \
                 `delimiter = \"{shown}\"` under [reader])",
                shorten(only)
            );
        }
    }
    let w = wanted.to_lowercase();
    let close = |c: &str| {
        let c = c.to_lowercase();
        let d = edit_distance(&w, &c);
        let contained =
            c.chars().count() >= 3 && w.chars().count() >= 3 && (c.contains(&w) || w.contains(&c));
        (d <= (wanted.chars().count() / 3).max(2) || contained).then_some(d)
    };
    let best = columns
        .iter()
        .filter_map(|c| close(c).map(|d| (d, c)))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!(" (closest column: `{}`, renamed?)", shorten(c)),
        None => {
            // A header can be megabytes long (a file that is not a table): name a few.
            let shown: Vec<String> = columns.iter().take(12).map(|c| shorten(c)).collect();
            let more = columns.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(" (columns: {}{more})", shown.join(", "))
        }
    }
}

/// At most 60 characters of a value or name from an input, for a message, its control
/// characters escaped: a whole line of input, or a terminal escape, never reaches one.
pub fn shorten(text: &str) -> String {
    shorten_to(text, 60)
}

/// At most `max` characters of `text`, control characters escaped.
pub fn shorten_to(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parse a text column to `ty`; the error is (row, message quoting the value).
fn parse_column(
    input: &StringArray,
    ty: FieldType,
    format: &ValueFormat,
) -> Result<ArrayRef, (usize, String)> {
    let n = input.len();
    macro_rules! build {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for row in 0..n {
                if input.is_null(row) {
                    b.append_null();
                    continue;
                }
                let raw = input.value(row);
                match $parse(raw.trim()) {
                    Ok(v) => b.append_value(v),
                    Err(why) => return Err((row, format!("value {:?} {why}", shorten(raw)))),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        FieldType::Text => Arc::new(input.clone()) as ArrayRef,
        FieldType::Integer => build!(Int64Builder::with_capacity(n), |s| parse_integer(s, format)),
        FieldType::Decimal(p, s) => build!(
            Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(p, s as i8)
                .map_err(|e| (0, e.to_string()))?,
            |v| parse_decimal(v, p, s, format)
        ),
        FieldType::Float => build!(Float64Builder::with_capacity(n), |s| parse_float(s, format)),
        FieldType::Boolean => build!(BooleanBuilder::with_capacity(n), parse_bool),
        FieldType::Date => build!(Date32Builder::with_capacity(n), |s| parse_date(s, format)),
        FieldType::Timestamp => build!(TimestampMicrosecondBuilder::with_capacity(n), |s| {
            parse_timestamp(s, format)
        }),
        FieldType::Time => build!(Time64MicrosecondBuilder::with_capacity(n), parse_time),
    })
}

/// Digits of a number with the source's separators normalised to plain `-123.45`.
/// Currency signs that may stand before or after an amount.
const CURRENCY_SIGNS: &str = "$€£¥₹₽₩₪₫₺₴₦₱฿¢₡₵₲₭₮₸₼₾";

/// Currency words besides three-letter ISO codes (letters only: dots are dropped).
const CURRENCY_WORDS: [&str; 14] = [
    "kr", "Kr", "Kč", "zł", "Fr", "SFr", "R", "Rs", "Ft", "lei", "лв", "руб", "دا", "دج",
];

/// Whether grouping marks in the whole-number part of `digits` (`.`-free) sit between
/// groups of three digits, as thousands separators do: `11'373`, `1 234 567`. A mark
/// anywhere else (`12 50`, `1.5` read with `.` for thousands) means the value is not the
/// number it would become without it.
fn grouped_in_threes(int_part: &str, is_mark: impl Fn(char) -> bool) -> bool {
    let groups: Vec<&str> = int_part.split(|c: char| is_mark(c)).collect();
    if groups.len() == 1 {
        return true;
    }
    let first = groups[0].trim_start_matches(['-', '+']);
    (1..=3).contains(&first.len()) && groups[1..].iter().all(|g| g.len() == 3)
}

/// A number as people print it, as plain text for Rust's parsers: `-1234.5`. Accepted
/// around the digits: currency signs and codes (`€`, `CHF`, `د.ا.`), any spaces (also
/// no-break and narrow ones), a sign in front or a trailing minus (`1.150,00-`),
/// parentheses for a negative (`(12.00)`), and `CR`/`DR` after it (credit positive,
/// debit negative). Inside: the format's separators, apostrophes as thousands separators
/// (`11'373.94`), spaces. `None` when anything else is left.
fn plain_number(s: &str, format: &ValueFormat) -> Option<String> {
    // Most values are plain (`-1234.50`): no symbols to look for, no characters to collect.
    let bytes = s.as_bytes();
    let plain = bytes.last().is_some_and(u8::is_ascii_digit)
        && bytes.iter().enumerate().all(|(i, &b)| {
            b.is_ascii_digit()
                || (i == 0 && (b == b'-' || b == b'+'))
                || char::from(b) == format.decimal_separator
                || Some(char::from(b)) == format.thousands_separator
        });
    if plain {
        if let Some(t) = format.thousands_separator {
            let int_part = s.split(format.decimal_separator).next().unwrap_or_default();
            if !grouped_in_threes(int_part, |c| c == t)
                || s.split(format.decimal_separator)
                    .skip(1)
                    .any(|f| f.contains(t))
            {
                return None;
            }
        }
        let mut out = String::with_capacity(s.len());
        for (i, c) in s.chars().enumerate() {
            if c == format.decimal_separator {
                out.push('.');
            } else if Some(c) != format.thousands_separator && !(i == 0 && c == '+') {
                out.push(c);
            }
        }
        return Some(out);
    }
    // Two signs side by side (`+-1`, `--1`) say nothing a number can mean (the plain
    // path above admits one sign only).
    if ["+-", "-+", "--", "++"].iter().any(|pair| s.contains(pair)) {
        return None;
    }
    let mut text: &str = s.trim();
    let mut negative = false;
    let mut signs = 0;
    // Parentheses around the whole value.
    if let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        negative = true;
        signs += 1;
        text = inner.trim();
    }
    // Credit / debit marks.
    let upper_end = text
        .get(text.len().saturating_sub(2)..)
        .map(str::to_ascii_uppercase);
    if let Some(mark) = upper_end.filter(|m| m == "CR" || m == "DR") {
        let rest = text[..text.len() - 2].trim_end();
        if rest.ends_with(|c: char| c.is_ascii_digit()) {
            negative ^= mark == "DR";
            signs += 1;
            text = rest;
        }
    }
    let strip_currency = |t: &str, from_start: bool| -> (String, Option<char>) {
        let chars: Vec<char> = if from_start {
            t.chars().collect()
        } else {
            t.chars().rev().collect()
        };
        let mut cut = 0;
        let mut sign = None;
        while cut < chars.len() {
            let c = chars[cut];
            let letter_dot = c == '.'
                && if from_start {
                    cut > 0 && chars[cut - 1].is_alphabetic()
                } else {
                    chars.get(cut + 1).is_some_and(|n| n.is_alphabetic())
                };
            if c.is_alphabetic() || CURRENCY_SIGNS.contains(c) || c.is_whitespace() || letter_dot {
                cut += 1;
            } else if (c == '-' || c == '+')
                && sign.is_none()
                && from_start
                && chars[cut + 1..]
                    .iter()
                    .any(|c| !c.is_ascii_digit() && !c.is_whitespace())
            {
                // `-€12`, `+ $1,150.00` or `€ -12`: the sign may stand on either side of
                // the currency.
                sign = Some(c);
                cut += 1;
            } else {
                break;
            }
        }
        // Only currencies are stripped: a three-letter ISO code or a known sign. Other
        // words mean something (`12,50 S` is a debit in German, `1,5 Mio.` a scale) and
        // must not be dropped: the value is then no number, and the file is rejected.
        let word: String = chars[..cut]
            .iter()
            .filter(|c| c.is_alphabetic())
            .copied()
            .collect();
        let word: String = if from_start {
            word
        } else {
            word.chars().rev().collect()
        };
        let iso = word.len() == 3 && word.chars().all(|c| c.is_ascii_uppercase());
        // One letter right against the number (`12a`, `R-0`) is no currency (`R 12`).
        let touching = word.chars().count() == 1 && cut > 0 && !chars[cut - 1].is_whitespace();
        if !word.is_empty() && (touching || !iso && !CURRENCY_WORDS.contains(&word.as_str())) {
            return (t.to_string(), None);
        }
        let kept: String = if from_start {
            chars[cut..].iter().collect()
        } else {
            chars[cut..].iter().rev().collect()
        };
        (kept, sign)
    };
    let (front, sign_front) = strip_currency(text, true);
    let (core, _) = strip_currency(&front, false);
    let mut core = core.as_str();
    if let Some(sign) = sign_front {
        negative ^= sign == '-';
        signs += 1;
    }
    // A sign may stand apart from the digits (`- 5.00`).
    if let Some(rest) = core.strip_prefix('-') {
        negative ^= true;
        signs += 1;
        core = rest.trim_start();
    } else if let Some(rest) = core.strip_prefix('+') {
        signs += 1;
        core = rest.trim_start();
    }
    if let Some(rest) = core.strip_suffix('-') {
        negative ^= true;
        signs += 1;
        core = rest;
    }
    if signs > 1 || core.is_empty() {
        return None;
    }
    let is_mark = |c: char| {
        Some(c) == format.thousands_separator || c.is_whitespace() || matches!(c, '\'' | '’' | 'ʼ')
    };
    let int_part = core
        .split(format.decimal_separator)
        .next()
        .unwrap_or_default();
    if !grouped_in_threes(int_part, is_mark)
        || core
            .split(format.decimal_separator)
            .skip(1)
            .any(|f| f.chars().any(is_mark))
    {
        return None;
    }
    let mut out = String::with_capacity(core.len() + 1);
    if negative {
        out.push('-');
    }
    for c in core.chars() {
        if Some(c) == format.thousands_separator
            || c.is_whitespace()
            || matches!(c, '\'' | '’' | 'ʼ')
        {
            continue;
        }
        if c == format.decimal_separator {
            out.push('.');
        } else if c.is_ascii_digit()
            || c == '.' && format.decimal_separator == '.'
            || matches!(c, 'e' | 'E' | '+' | '-')
        {
            out.push(c);
        } else {
            return None;
        }
    }
    Some(out)
}

fn parse_integer(s: &str, format: &ValueFormat) -> Result<i64, String> {
    plain_number(s, format)
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| "is not an integer".to_string())
}

fn parse_float(s: &str, format: &ValueFormat) -> Result<f64, String> {
    plain_number(s, format)
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| "is not a number".to_string())
}

/// Exact decimal parsing: the unscaled i128 for DECIMAL(p,s). More fractional digits than
/// the scale is an error, never a rounding.
pub fn parse_decimal(
    s: &str,
    precision: u8,
    scale: u8,
    format: &ValueFormat,
) -> Result<i128, String> {
    let plain = plain_number(s, format).unwrap_or_default();
    let (negative, digits) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, plain.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(format!(
            "is not a decimal number (decimal separator `{}`{})",
            format.decimal_separator,
            format
                .thousands_separator
                .map(|t| format!(", thousands separator `{t}`"))
                .unwrap_or_default()
        ));
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(format!(
            "has more than {scale} decimal places; give the field type decimal(p,s) with a larger scale"
        ));
    }
    let int = int.trim_start_matches('0');
    if int.len() + scale as usize > precision as usize {
        return Err(format!("does not fit decimal({precision},{scale})"));
    }
    let mut unscaled: i128 = 0;
    for b in int.bytes() {
        unscaled = unscaled * 10 + i128::from(b - b'0');
    }
    for i in 0..scale as usize {
        let d = frac_trimmed.as_bytes().get(i).map_or(0, |b| b - b'0');
        unscaled = unscaled * 10 + i128::from(d);
    }
    Ok(if negative { -unscaled } else { unscaled })
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err("is not a boolean (true/false, yes/no, 1/0)".into()),
    }
}

/// `s` as a date in the source's date formats (with its year or period), if it is one.
pub fn date_of(s: &str, format: &ValueFormat) -> Option<NaiveDate> {
    let days = parse_date(s, format).ok()?;
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days.into()))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")).num_days() as i32
}

fn parse_date(s: &str, format: &ValueFormat) -> Result<i32, String> {
    let Some(formats) = &format.date_format else {
        return parse_date_as(s, "%Y-%m-%d", format);
    };
    // The formats in order: the first that reads the value wins. When none does, the
    // first that read it but refused the date (no year in the statement period, a
    // two-digit year under `%Y`) says why; `["%d.%m.%Y", "%d.%m.%y"]` reads both years.
    let mut why = None;
    for fmt in formats.iter() {
        match parse_date_as(s, fmt, format) {
            Ok(d) => return Ok(d),
            Err(e) if e.starts_with("is not a date") => {}
            Err(e) => {
                why.get_or_insert(e);
            }
        }
    }
    if let Some(why) = why {
        return Err(why);
    }
    let tried: Vec<String> = formats.iter().map(|f| format!("`{f}`")).collect();
    Err(match tried.len() {
        1 => format!("is not a date in the format {}", tried[0]),
        _ => format!("is not a date in any of the formats {}", tried.join(", ")),
    })
}

/// `s` as a date in one chrono format `fmt` (with the source's year or period when `fmt`
/// has no year).
fn parse_date_as(s: &str, fmt: &str, format: &ValueFormat) -> Result<i32, String> {
    if fmt == "%Y-%m-%d" {
        if let Some(d) = iso_date(s.as_bytes()) {
            return Ok(days_since_epoch(d));
        }
    }
    let has_year = crate::readers::format_has_year(fmt);
    let parsed = match (format.year, &format.period) {
        _ if has_year => NaiveDate::parse_from_str(s, fmt),
        // Dates written without a year (`05 Nov`): the source's `year` completes them,
        // or the statement period the unit names.
        (Some(year), _) => NaiveDate::parse_from_str(&format!("{s} {year}"), &format!("{fmt} %Y")),
        (None, Some(period)) => return period.date(s, fmt).map(days_since_epoch),
        (None, None) => NaiveDate::parse_from_str(s, fmt),
    };
    match parsed {
        // chrono reads `18` for `%Y` as the year 18: a two-digit year read with the wrong
        // format, never a booking date.
        Ok(d) => {
            crate::readers::period::two_digit_year(d.year(), fmt)?;
            Ok(days_since_epoch(d))
        }
        Err(_) => Err(format!("is not a date in the format `{fmt}`")),
    }
}

/// `YYYY-MM-DD` exactly, without chrono's format machinery (it runs for every date
/// cell); anything else is left to `parse_from_str`, which gives the same answer.
fn iso_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn parse_timestamp(s: &str, format: &ValueFormat) -> Result<i64, String> {
    if let Some(fmt) = format.timestamp_format.as_deref() {
        // A format with an offset (`%z`, `%:z`, `%#z`) gives an instant, kept as UTC;
        // parsing it as a naive time would drop the offset.
        let parsed = if has_offset(fmt) {
            DateTime::parse_from_str(s, fmt).map(|t| t.naive_utc())
        } else {
            NaiveDateTime::parse_from_str(s, fmt)
        };
        let t = parsed.map_err(|_| format!("is not a timestamp in the format `{fmt}`"))?;
        crate::readers::period::two_digit_year(t.year(), fmt)?;
        return Ok(t.and_utc().timestamp_micros());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    // ISO 8601 with a space, and an offset written `+02:00`, `+0200` or ` -0700`.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Ok(t.timestamp_micros());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        // A date alone is its midnight.
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros());
    }
    Err("is not an ISO 8601 timestamp (set `timestamp_format` in the source)".into())
}

/// A time of day as microseconds since midnight: `14:30`, `14:30:05`, `14:30:05.25`, or
/// on a 12-hour clock, `2:30 PM`, `2:30:05pm`.
fn parse_time(s: &str) -> Result<i64, String> {
    const FORMATS: [&str; 6] = [
        "%H:%M:%S%.f",
        "%H:%M",
        "%I:%M:%S %p",
        "%I:%M %p",
        "%I:%M:%S%p",
        "%I:%M%p",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(s, f).ok())
        .map(|t| {
            i64::from(t.num_seconds_from_midnight()) * 1_000_000
                + i64::from(t.nanosecond().min(999_999_999) / 1000)
        })
        .ok_or_else(|| "is not a time of day (`14:30`, `14:30:05`, `2:30 PM`)".into())
}

/// Whether a chrono format has an offset specifier (`%z`, `%:z`, `%::z`, `%#z`).
fn has_offset(fmt: &str) -> bool {
    ["%z", "%:z", "%::z", "%:::z", "%#z"]
        .iter()
        .any(|spec| fmt.contains(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: times of day, as a spreadsheet's time cell's canonical text and as
    /// people write them.
    #[test]
    fn times_of_day() {
        let at = |h: i64, m: i64, s: i64| ((h * 60 + m) * 60 + s) * 1_000_000;
        assert_eq!(parse_time("14:30"), Ok(at(14, 30, 0)));
        assert_eq!(parse_time("07:05:09.25"), Ok(at(7, 5, 9) + 250_000));
        assert_eq!(parse_time("2:30 PM"), Ok(at(14, 30, 0)));
        assert_eq!(parse_time("12:15:01am"), Ok(at(0, 15, 1)));
        for bad in ["24:00", "14.30", "noon", "2026-01-05 14:30", "14:61"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    /// Issue 10: numbers as banks print them.
    #[test]
    fn amounts_as_people_print_them() {
        let us = ValueFormat::default();
        let de = ValueFormat {
            decimal_separator: ',',
            thousands_separator: Some('.'),
            ..ValueFormat::default()
        };
        let dec = |s: &str, f: &ValueFormat| parse_decimal(s, 18, 2, f);
        for (text, f, want) in [
            ("11'373.94", &us, 1_137_394),
            ("11’373.94", &us, 1_137_394),
            ("1.150,00-", &de, -115_000),
            ("(12.00)", &us, -1200),
            ("(£12.00)", &us, -1200),
            (
                "£1,234.50",
                &ValueFormat {
                    thousands_separator: Some(','),
                    ..ValueFormat::default()
                },
                123_450,
            ),
            ("-€12.30", &us, -1230),
            ("€ -12.30", &us, -1230),
            ("12.30 CHF", &us, 1230),
            ("CHF\u{a0}12.30", &us, 1230),
            ("1\u{202f}234,56 €", &de, 123_456),
            ("د.ا. 12.50", &us, 1250),
            ("12.50 د.ا.", &us, 1250),
            ("12.00 CR", &us, 1200),
            ("12.00DR", &us, -1200),
            ("+5", &us, 500),
            ("- $220.00", &us, -22_000),
            ("+ $1150.00", &us, 115_000),
            ("+£3.10", &us, 310),
            ("+ 5", &us, 500),
            ("- 5.25", &us, -525),
            ("+EUR 5", &us, 500),
            ("R 12.00", &us, 1200),
            ("12 kr", &us, 1200),
        ] {
            assert_eq!(dec(text, f), Ok(want), "{text}");
        }
        for bad in [
            "", "-", "12.3.4", "1-2", "--5", "(-5)", "5 DR-", "abc", "12,50", "12a", "x12",
            "12 50", "12'5", "12.50 S", "12.00 D", "1,5 Mio.", "R-0", "+ $-5", "- $+5", "+$5-",
        ] {
            assert!(dec(bad, &us).is_err(), "{bad} must not parse");
        }
        // Floats: no NaN or infinity slips in as a number.
        assert_eq!(parse_float("(1.5)", &us), Ok(-1.5));
        assert_eq!(parse_float("1e3", &us), Ok(1000.0));
        for bad in ["NaN", "inf", "-inf", "1e400"] {
            assert!(parse_float(bad, &us).is_err(), "{bad} must not parse");
        }
        assert_eq!(parse_integer("1'000", &us), Ok(1000));
        // Marks that are no thousands separators make no number (review of issue 10).
        assert!(
            dec("1.5", &de).is_err(),
            "1.5 with `.` for thousands is not 15"
        );
        assert!(dec("01.02.2024", &de).is_err(), "a date is no amount");
        assert_eq!(dec("1.234.567,89", &de), Ok(123_456_789));
        assert_eq!(parse_integer("7-", &us), Ok(-7));
    }

    /// Issue 10: a column writing this year's dates without the year and earlier ones
    /// with it (Revolut, 2019) is read with a list of formats, in order.
    #[test]
    fn a_list_of_date_formats_is_tried_in_order() {
        let f = ValueFormat {
            date_format: Some(crate::readers::DateFormats(vec![
                "%B %d".into(),
                "%Y %B %d".into(),
            ])),
            year: Some(2019),
            ..ValueFormat::default()
        };
        let day = |y, m, d| days_since_epoch(NaiveDate::from_ymd_opt(y, m, d).expect("date"));
        assert_eq!(parse_date("September 15", &f), Ok(day(2019, 9, 15)));
        assert_eq!(parse_date("2018 August 28", &f), Ok(day(2018, 8, 28)));
        let err = parse_date("Pending", &f).unwrap_err();
        assert!(
            err.contains("any of the formats `%B %d`, `%Y %B %d`"),
            "{err}"
        );
        // Four-digit and two-digit years: the `%Y` guard passes on to `%y`.
        let years = ValueFormat {
            date_format: Some(crate::readers::DateFormats(vec![
                "%d.%m.%Y".into(),
                "%d.%m.%y".into(),
            ])),
            ..ValueFormat::default()
        };
        assert_eq!(parse_date("28.03.18", &years), Ok(day(2018, 3, 28)));
        assert_eq!(parse_date("28.03.2018", &years), Ok(day(2018, 3, 28)));
        // The year rule: a list with a format without a year needs `year` or `period`.
        use crate::readers::period::check_year;
        let mixed = crate::readers::DateFormats(vec!["%B %d".into(), "%Y %B %d".into()]);
        assert!(check_year(Some(&mixed), None, None, None).is_err());
        let full = crate::readers::DateFormats(vec!["%d.%m.%Y".into(), "%d.%m.%y".into()]);
        assert!(check_year(Some(&full), Some(2019), None, None).is_err());
        assert!(check_year(Some(&full), None, None, None).is_ok());
    }

    /// Issue 10: dates without a year take the source's `year`.
    #[test]
    fn dates_without_a_year_take_the_sources_year() {
        let f = ValueFormat {
            date_format: Some("%d %b".into()),
            year: Some(2025),
            ..ValueFormat::default()
        };
        let want = days_since_epoch(NaiveDate::from_ymd_opt(2025, 11, 5).expect("date"));
        assert_eq!(parse_date("05 Nov", &f), Ok(want));
        assert!(parse_date("31 Feb", &f).is_err());
        // A two-digit year read with `%Y` is the year 18: refused, naming `%y`.
        let y = ValueFormat {
            date_format: Some("%d.%m.%Y".into()),
            ..ValueFormat::default()
        };
        assert!(parse_date("28.03.18", &y).unwrap_err().contains("`%y`"));
        let iso = ValueFormat {
            date_format: Some("%F".into()),
            timestamp_format: Some("%d.%m.%Y %H:%M".into()),
            ..ValueFormat::default()
        };
        assert!(parse_date("18-03-28", &iso).unwrap_err().contains("`%y`"));
        assert!(parse_timestamp("28.03.18 10:00", &iso)
            .unwrap_err()
            .contains("`%y`"));
        assert!(parse_date("28.03.2018", &y).is_ok());
        use crate::readers::period::check_year;
        assert!(check_year(Some(&"%d %b".into()), None, None, None).is_err());
        assert!(check_year(Some(&"%d.%m.%Y".into()), Some(2025), None, None).is_err());
        assert!(check_year(Some(&"%d.%m.".into()), Some(2025), None, None).is_ok());
        assert!(check_year(None, None, None, None).is_ok());
        // Or the statement period the unit names.
        let p = ValueFormat {
            date_format: Some("%d %b".into()),
            period: Some(crate::readers::period::Period {
                start: NaiveDate::from_ymd_opt(2025, 11, 20),
                end: NaiveDate::from_ymd_opt(2026, 1, 19),
            }),
            ..ValueFormat::default()
        };
        assert_eq!(parse_date("05 Nov", &p), Ok(want));
        let january = days_since_epoch(NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"));
        assert_eq!(parse_date("05 Jan", &p), Ok(january));
        let far = parse_date("05 Jun", &p).unwrap_err();
        assert!(far.contains("2025-11-20 to 2026-01-19"), "{far}");
    }

    /// Issue 10: `2017-09-29 15:40:00 -0700` was stored as 15:40.
    #[test]
    fn offsets_keep_the_instant_in_utc() {
        let mut f = ValueFormat {
            timestamp_format: Some("%Y-%m-%d %H:%M:%S %z".into()),
            ..ValueFormat::default()
        };
        let utc_2240 = NaiveDate::from_ymd_opt(2017, 9, 29)
            .and_then(|d| d.and_hms_opt(22, 40, 0))
            .expect("time")
            .and_utc()
            .timestamp_micros();
        assert_eq!(
            parse_timestamp("2017-09-29 15:40:00 -0700", &f),
            Ok(utc_2240)
        );
        f.timestamp_format = Some("%d.%m.%Y %H:%M%:z".into());
        assert_eq!(parse_timestamp("29.09.2017 23:40+01:00", &f), Ok(utc_2240));
        // Without a format: ISO 8601 with a space and an offset.
        let iso = ValueFormat::default();
        assert_eq!(
            parse_timestamp("2017-09-29 15:40:00-07:00", &iso),
            Ok(utc_2240)
        );
        assert_eq!(
            parse_timestamp("2017-09-29 15:40:00 -0700", &iso),
            Ok(utc_2240)
        );
        // A format without an offset still reads the time as written.
        f.timestamp_format = Some("%d.%m.%Y %H:%M".into());
        assert_eq!(
            parse_timestamp("29.09.2017 22:40", &f),
            Ok(utc_2240),
            "naive times are taken as UTC"
        );
    }

    #[test]
    fn the_iso_date_fast_path_agrees_with_chrono() {
        let iso = ValueFormat::default();
        for s in [
            "2025-01-31",
            "2024-02-29",
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "0001-01-01",
            "9999-12-31",
            "2025-1-31",
            "2025-01-3x",
            "2025/01/31",
            "+2025-01-31",
            "",
        ] {
            let chrono = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
            if let Some(fast) = iso_date(s.as_bytes()) {
                assert_eq!(Some(fast), chrono, "{s}");
            }
            assert_eq!(
                parse_date(s, &iso).ok(),
                chrono.map(days_since_epoch),
                "{s}"
            );
        }
    }

    fn eu() -> ValueFormat {
        ValueFormat {
            decimal_separator: ',',
            thousands_separator: Some('.'),
            date_format: Some("%d.%m.%Y".into()),
            timestamp_format: None,
            year: None,
            period: None,
        }
    }

    #[test]
    fn decimals_are_exact_in_both_locales() {
        let us = ValueFormat::default();
        assert_eq!(parse_decimal("1234.5", 18, 2, &us), Ok(123450));
        assert_eq!(parse_decimal("-1.234,56", 18, 2, &eu()), Ok(-123456));
        assert_eq!(parse_decimal("+0,10", 18, 2, &eu()), Ok(10));
        assert_eq!(parse_decimal("2.500", 18, 2, &us), Ok(250));
        assert!(parse_decimal("0.125", 18, 2, &us)
            .unwrap_err()
            .contains("decimal places"));
        assert!(parse_decimal("12a", 18, 2, &us).is_err());
        assert!(parse_decimal("-", 18, 2, &us).is_err());
        assert!(parse_decimal("1234", 4, 2, &us)
            .unwrap_err()
            .contains("fit"));
    }

    #[test]
    fn dates_and_timestamps_follow_the_format() {
        assert_eq!(parse_date("02.01.1970", &eu()), Ok(1));
        assert!(parse_date("1970-01-02", &eu()).is_err());
        let us = ValueFormat::default();
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5", &us), Ok(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00", &us), Ok(0));
    }

    #[test]
    fn rename_hint_finds_close_columns_only() {
        let cols = vec!["Booking Date".to_string(), "Amount".to_string()];
        assert!(hint("Bookng Date", &cols).contains("closest column: `Booking Date`"));
        assert!(hint("Amount (EUR)", &cols).contains("closest column: `Amount`"));
        assert!(!hint("Currency", &cols).contains("closest"));
    }

    /// Issue 12: a header of megabytes, or control bytes, never reach a message whole.
    #[test]
    fn messages_shorten_and_escape_what_inputs_hold() {
        let wide: Vec<String> = (0..5000).map(|i| format!("c{i}")).collect();
        let h = hint("Amount", &wide);
        assert!(h.len() < 200, "{h}");
        assert!(h.ends_with("and 4988 more)"), "{h}");
        let long = "x".repeat(10_000);
        assert_eq!(shorten(&long).chars().count(), 61);
        assert_eq!(shorten("a\u{1b}[31mb"), "a\\u{1b}[31mb");
    }

    /// Issue 10: a file split at the wrong delimiter was reported as a renamed column.
    #[test]
    fn one_column_holding_a_delimiter_asks_about_the_delimiter() {
        let one = vec!["Date;Amount;Memo".to_string()];
        let h = hint("Amount", &one);
        assert!(
            h.contains("found one column, `Date;Amount;Memo`; is the delimiter `;`?"),
            "{h}"
        );
        assert!(!h.contains("closest"), "{h}");
        let tab = vec!["Date\tAmount".to_string()];
        assert!(hint("Amount", &tab).contains("delimiter = \"\\t\""));
        // One column without a delimiter in its name is just one column.
        assert!(hint("Amount", &["Amount2".to_string()]).contains("closest column"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn formats() -> impl Strategy<Value = ValueFormat> {
            (
                prop_oneof![Just('.'), Just(',')],
                prop_oneof![
                    Just(None),
                    Just(Some('.')),
                    Just(Some(',')),
                    Just(Some('\'')),
                    Just(Some(' '))
                ],
                prop_oneof![
                    Just(None),
                    Just(Some("%d.%m.%Y".to_string())),
                    Just(Some("%m/%d/%y".to_string())),
                    Just(Some("%d %b".to_string()))
                ],
                prop_oneof![Just(None), Just(Some(2026))],
            )
                .prop_filter("separators differ", |(d, t, _, _)| Some(*d) != *t)
                .prop_map(
                    |(decimal_separator, thousands_separator, date_format, year)| ValueFormat {
                        decimal_separator,
                        thousands_separator,
                        date_format: date_format.map(|f: String| f.as_str().into()),
                        timestamp_format: None,
                        year,
                        period: None,
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Issue 12: the number and date parsers take any text: a value or a typed
            /// refusal, never a panic.
            #[test]
            fn parsers_never_panic(s in "\\PC{0,40}", f in formats()) {
                let _ = plain_number(&s, &f);
                let _ = parse_integer(&s, &f);
                let _ = parse_float(&s, &f);
                let _ = parse_decimal(&s, 18, 2, &f);
                let _ = parse_decimal(&s, 38, 10, &f);
                let _ = parse_bool(&s);
                let _ = parse_date(&s, &f);
                let _ = parse_timestamp(&s, &f);
            }

            /// Numbers as people print them come back as the number.
            #[test]
            fn printed_numbers_read_back(cents in -10_000_000_000i64..10_000_000_000i64) {
                let f = ValueFormat { decimal_separator: ',', thousands_separator: Some('.'), ..ValueFormat::default() };
                let abs = cents.unsigned_abs();
                let mut int = (abs / 100).to_string();
                let mut grouped = String::new();
                while int.len() > 3 {
                    let tail = int.split_off(int.len() - 3);
                    grouped = format!(".{tail}{grouped}");
                }
                let text = format!("{int}{grouped},{:02}{}", abs % 100, if cents < 0 { "-" } else { "" });
                prop_assert_eq!(parse_decimal(&text, 18, 2, &f), Ok(cents as i128));
            }
        }
    }
}
