//! Dates written without a year (`05 Nov`): the year a source names (`year`), or the one
//! its statement period gives (`period`, found in the lines above the data).
//!
//! The rule for a period with a start and an end: a date takes the year that puts it
//! inside the period; if no year does, the year that puts it nearest to the period, at
//! most 31 days before its start or after its end (a purchase booked days after it was
//! made). With an end only (a statement date), the latest year that puts the date on or
//! before it; with a start only, the earliest that puts it on or after it. Any other
//! date, a tie, or a date another year would put within 31 days on the far side of a
//! lone bound, is an error: a year is never guessed.

use chrono::{Datelike, NaiveDate};
use regex::Regex;

use super::pattern;

/// How far outside its period a statement's date may lie and still take a year from it.
pub const SLACK_DAYS: i64 = 31;

/// The longest period a statement may state: longer ones do not tell a date's year.
const MAX_DAYS: i64 = 366;

/// A statement's period, both days included; at least one bound is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

impl Period {
    /// The date `text` (in `format`, which has no year) names, with the year the period
    /// gives it; the error says why there is none.
    pub fn date(&self, text: &str, format: &str) -> Result<NaiveDate, String> {
        let (Some(first), Some(last)) = (self.start.or(self.end), self.end.or(self.start)) else {
            return Err("has no year: the statement period has neither start nor end".into());
        };
        let candidates: Vec<NaiveDate> = (first.year().saturating_sub(1)
            ..=last.year().saturating_add(1))
            .filter_map(|y| {
                NaiveDate::parse_from_str(&format!("{text} {y}"), &format!("{format} %Y")).ok()
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!("is not a date in the format `{format}`"));
        }
        let days = |a: NaiveDate, b: NaiveDate| (a - b).num_days();
        let ambiguous = |a: &NaiveDate, b: &NaiveDate| {
            format!(
                "could be {a} or {b} for the statement period {self}, so its year is not \
                 known"
            )
        };
        let outside = || {
            format!(
                "is more than {SLACK_DAYS} days outside the statement period {self} in every \
                 year, so its year is not known"
            )
        };
        match (self.start, self.end) {
            (Some(start), Some(end)) => {
                let inside: Vec<&NaiveDate> = candidates
                    .iter()
                    .filter(|d| (start..=end).contains(d))
                    .collect();
                match inside[..] {
                    [one] => return Ok(*one),
                    [a, b, ..] => return Err(ambiguous(a, b)),
                    [] => {}
                }
                let distance = |d: &NaiveDate| days(start, *d).max(days(*d, end));
                let mut near: Vec<&NaiveDate> = candidates
                    .iter()
                    .filter(|d| distance(d) <= SLACK_DAYS)
                    .collect();
                near.sort_by_key(|d| distance(d));
                match near[..] {
                    [a, b, ..] if distance(a) == distance(b) => Err(ambiguous(a, b)),
                    [a, ..] => Ok(*a),
                    [] => Err(outside()),
                }
            }
            (None, Some(end)) => {
                let chosen = candidates.iter().rfind(|d| **d <= end);
                let beyond = candidates
                    .iter()
                    .find(|d| **d > end && days(**d, end) <= SLACK_DAYS);
                match (chosen, beyond) {
                    (Some(a), Some(b)) => Err(ambiguous(a, b)),
                    (Some(a), None) if days(end, *a) < MAX_DAYS => Ok(*a),
                    _ => Err(outside()),
                }
            }
            (Some(start), None) => {
                let chosen = candidates.iter().find(|d| **d >= start);
                let before = candidates
                    .iter()
                    .find(|d| **d < start && days(start, **d) <= SLACK_DAYS);
                match (chosen, before) {
                    (Some(a), Some(b)) => Err(ambiguous(b, a)),
                    (Some(a), None) if days(*a, start) < MAX_DAYS => Ok(*a),
                    _ => Err(outside()),
                }
            }
            (None, None) => Err(outside()),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.start, self.end) {
            (Some(a), Some(b)) => write!(f, "{a} to {b}"),
            (Some(a), None) => write!(f, "from {a}"),
            (None, Some(b)) => write!(f, "up to {b}"),
            (None, None) => f.write_str("(none)"),
        }
    }
}

/// A year below 1000 read with `%Y` is a two-digit year (`18`) read with the wrong format.
pub fn two_digit_year(year: i32, format: &str) -> Result<(), String> {
    if year < 1000 && (format.contains("%Y") || format.contains("%F")) {
        return Err(format!(
            "has the year {year}: a year written with two digits needs `%y`, not `%Y`, in \
             the format `{format}`"
        ));
    }
    Ok(())
}

/// `period` and `period_format` of a source, compiled.
#[derive(Debug, Clone)]
pub struct PeriodRule {
    pattern: Regex,
    format: String,
}

impl PeriodRule {
    /// The rule of `period`: a regular expression with a group `start`, a group `end`, or
    /// both; `period_format` (with a year, ISO 8601 by default) reads them.
    pub fn new(period: &str, format: Option<&str>) -> Result<PeriodRule, (String, String)> {
        let re = pattern("period", period)?;
        let groups: Vec<&str> = re.capture_names().flatten().collect();
        if !groups.iter().any(|g| matches!(*g, "start" | "end")) {
            return Err((
                "period".into(),
                "needs a group `start`, `end` or both, such as \
                 `(?P<start>\\d\\d\\.\\d\\d\\.\\d{4}) - (?P<end>\\d\\d\\.\\d\\d\\.\\d{4})`"
                    .into(),
            ));
        }
        let format = format.unwrap_or("%Y-%m-%d");
        super::check_formats(Some(&format.into()), None)
            .map_err(|(_, m)| ("period_format".into(), m))?;
        if !super::format_has_year(format) {
            return Err((
                "period_format".into(),
                format!("`{format}` has no year: the period's dates must have one"),
            ));
        }
        Ok(PeriodRule {
            pattern: re,
            format: format.to_string(),
        })
    }

    /// The period the first match of the pattern in `text` gives (a lone `end` is a
    /// statement date, a lone `start` a first day).
    pub fn find(&self, text: &str, looked_in: &str) -> Result<Period, String> {
        let caps = self.pattern.captures(text).ok_or_else(|| {
            format!("`period` matches nothing in {looked_in}, so dates without a year have none")
        })?;
        let date = |group: &str| -> Result<Option<NaiveDate>, String> {
            let Some(m) = caps.name(group) else {
                return Ok(None);
            };
            NaiveDate::parse_from_str(m.as_str().trim(), &self.format)
                .map(Some)
                .map_err(|_| {
                    format!(
                        "`period` found {group} {:?}, which is not a date in `period_format` `{}`",
                        crate::validate::shorten(m.as_str()),
                        self.format
                    )
                })
        };
        let period = Period {
            start: date("start")?,
            end: date("end")?,
        };
        for d in [period.start, period.end].into_iter().flatten() {
            two_digit_year(d.year(), &self.format)
                .map_err(|m| format!("`period` found a date that {m}"))?;
        }
        match (period.start, period.end) {
            (None, None) => {
                return Err("`period` matched, but neither its `start` nor its `end` group".into())
            }
            (Some(start), Some(end)) if start > end => {
                return Err(format!(
                    "`period` found a period that ends before it starts ({start} to {end})"
                ))
            }
            (Some(start), Some(end)) if (end - start).num_days() >= MAX_DAYS => {
                return Err(format!(
                    "`period` found {start} to {end}, longer than a year: it does not tell the \
                     year of a date without one"
                ))
            }
            _ => {}
        }
        Ok(period)
    }
}

/// `check_year` on a reader config's `date_format`, `year`, `period`, `period_format`.
macro_rules! check_year_options {
    ($config:expr) => {
        $crate::readers::period::check_year(
            $config.date_format.as_ref(),
            $config.year,
            $config.period.as_deref(),
            $config.period_format.as_deref(),
        )
    };
}
pub(crate) use check_year_options;

/// The options of dates without a year: a `date_format` without one needs `year` or
/// `period`, and they need such a format; a date is never completed with a year nobody
/// chose.
pub fn check_year(
    date_format: Option<&super::DateFormats>,
    year: Option<i32>,
    period: Option<&str>,
    period_format: Option<&str>,
) -> Result<(), (String, String)> {
    if let Some(y) = year.filter(|y| !(1000..=9999).contains(y)) {
        return Err((
            "year".into(),
            format!("{y} is not a year written with four digits"),
        ));
    }
    if let Some(p) = period {
        PeriodRule::new(p, period_format)?;
    } else if period_format.is_some() {
        return Err((
            "period_format".into(),
            "reads the dates `period` finds; there is no `period`".into(),
        ));
    }
    // A list may mix formats with and without a year; those without one need it.
    let has_year = date_format.is_none_or(|fs| fs.iter().all(super::format_has_year));
    match (has_year, year, period) {
        (_, Some(_), Some(_)) => Err(("period".into(), "give `year` or `period`, not both".into())),
        (false, None, None) => Err((
            "date_format".into(),
            format!(
                "{} no year (%Y or %y); set `year` to the year of the dates, or `period` to \
                 take it from the statement period",
                date_format
                    .map(|fs| {
                        let without: Vec<String> = fs
                            .iter()
                            .filter(|f| !super::format_has_year(f))
                            .map(|f| format!("`{f}`"))
                            .collect();
                        format!(
                            "{} {}",
                            without.join(", "),
                            if without.len() > 1 { "have" } else { "has" }
                        )
                    })
                    .unwrap_or_default()
            ),
        )),
        (true, Some(_), _) => Err((
            "year".into(),
            "is for dates written without a year; `date_format` has one".into(),
        )),
        (true, _, Some(_)) => Err((
            "period".into(),
            "is for dates written without a year; `date_format` has one".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn period(start: &str, end: &str) -> Period {
        Period {
            start: Some(day(start)),
            end: Some(day(end)),
        }
    }

    /// A card statement from late November to late December: December's dates are in
    /// 2024, January's (booked late) in 2025, a purchase days before the start in 2024.
    #[test]
    fn a_date_takes_the_year_that_puts_it_in_the_period() {
        let p = period("2024-11-28", "2025-01-27");
        assert_eq!(p.date("05 Dec", "%d %b"), Ok(day("2024-12-05")));
        assert_eq!(p.date("10 Jan", "%d %b"), Ok(day("2025-01-10")));
        assert_eq!(p.date("29.11.", "%d.%m."), Ok(day("2024-11-29")));
        // Outside by days: the nearest year.
        assert_eq!(p.date("20 Nov", "%d %b"), Ok(day("2024-11-20")));
        assert_eq!(p.date("02 Feb", "%d %b"), Ok(day("2025-02-02")));
        // Outside by months: no year is right.
        assert!(p.date("15 Jun", "%d %b").unwrap_err().contains("outside"));
        assert!(p
            .date("31 Feb", "%d %b")
            .unwrap_err()
            .contains("not a date"));
        // 29 February exists in leap years only.
        let leap = period("2024-02-01", "2024-02-29");
        assert_eq!(leap.date("29 Feb", "%d %b"), Ok(day("2024-02-29")));
        // A tie between two years is not broken by a guess.
        let tie = period("2024-03-01", "2025-01-31");
        assert!(tie
            .date("15 Feb", "%d %b")
            .unwrap_err()
            .contains("could be"));
        // A statement date alone: the latest year up to it, unless another year puts the
        // date days after it.
        let up_to = Period {
            start: None,
            end: Some(day("2025-01-15")),
        };
        assert_eq!(up_to.date("16 Dec", "%d %b"), Ok(day("2024-12-16")));
        assert_eq!(up_to.date("15 Jan", "%d %b"), Ok(day("2025-01-15")));
        assert_eq!(up_to.date("15 Jun", "%d %b"), Ok(day("2024-06-15")));
        let late = up_to.date("20 Jan", "%d %b").unwrap_err();
        assert!(late.contains("2024-01-20 or 2025-01-20"), "{late}");
        // A first day alone: the earliest year from it; a purchase days before it is
        // ambiguous, not placed eleven months later.
        let from = Period {
            start: Some(day("2024-12-01")),
            end: None,
        };
        assert_eq!(from.date("03 Jan", "%d %b"), Ok(day("2025-01-03")));
        assert!(from
            .date("28 Nov", "%d %b")
            .unwrap_err()
            .contains("could be"));
        let leap_start = Period {
            start: Some(day("2024-02-29")),
            end: None,
        };
        assert_eq!(leap_start.date("29 Feb", "%d %b"), Ok(day("2024-02-29")));
        assert_eq!(leap_start.date("01 Mar", "%d %b"), Ok(day("2024-03-01")));
    }

    #[test]
    fn the_period_is_found_in_the_text_above_the_data() {
        let rule = PeriodRule::new(r"Zeitraum: (?P<start>\S+) - (?P<end>\S+)", Some("%d.%m.%Y"))
            .expect("valid rule");
        let text = "Konto DE12 3456\nZeitraum: 28.11.2024 - 27.12.2024\n";
        assert_eq!(
            rule.find(text, "the preamble"),
            Ok(period("2024-11-28", "2024-12-27"))
        );
        let missing = rule
            .find("Konto DE12", "the 2 lines above the header")
            .unwrap_err();
        assert!(
            missing.contains("the 2 lines above the header"),
            "{missing}"
        );
        let bad = rule
            .find("Zeitraum: 31.02.2024 - 27.12.2024", "x")
            .unwrap_err();
        assert!(bad.contains("31.02.2024"), "{bad}");
        let backwards = rule
            .find("Zeitraum: 28.12.2024 - 27.11.2024", "x")
            .unwrap_err();
        assert!(backwards.contains("ends before"), "{backwards}");
        let long = rule
            .find("Zeitraum: 01.01.2023 - 31.12.2024", "x")
            .unwrap_err();
        assert!(long.contains("longer than a year"), "{long}");
        let short_year = rule.find("Zeitraum: 28.11.24 - 27.12.24", "x").unwrap_err();
        assert!(short_year.contains("`%y`"), "{short_year}");
        // A statement date alone.
        let statement_date =
            PeriodRule::new(r"Statement date (?P<end>\d{4}-\d\d-\d\d)", None).expect("valid");
        assert_eq!(
            statement_date.find("Statement date 2025-01-15", "x"),
            Ok(Period {
                start: None,
                end: Some(day("2025-01-15"))
            })
        );
    }

    #[test]
    fn year_options_are_checked_together() {
        let ok = |d: Option<&str>, y, p, f| {
            check_year(d.map(super::super::DateFormats::from).as_ref(), y, p, f).is_ok()
        };
        assert!(ok(Some("%d %b"), Some(2025), None, None));
        assert!(ok(
            Some("%d %b"),
            None,
            Some("(?P<end>.+)"),
            Some("%d.%m.%Y")
        ));
        assert!(ok(None, None, None, None));
        assert!(!ok(Some("%d %b"), None, None, None));
        assert!(!ok(Some("%d.%m.%Y"), Some(2025), None, None));
        assert!(!ok(Some("%d.%m.%Y"), None, Some("(?P<end>.+)"), None));
        assert!(!ok(Some("%d %b"), Some(2025), Some("(?P<end>.+)"), None));
        assert!(!ok(Some("%d %b"), None, Some("(.+)"), None));
        assert!(!ok(
            Some("%d %b"),
            None,
            Some("(?P<end>.+)"),
            Some("%d.%m.")
        ));
        assert!(!ok(Some("%d %b"), Some(2025), None, Some("%d.%m.%Y")));
        assert!(!ok(Some("%d %b"), Some(25), None, None));
    }
}
