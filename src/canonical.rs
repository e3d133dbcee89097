//! Canonical text of typed values: the one form a value takes in hash input, whatever
//! the source wrote (recipe v1). A leaf: validation and the vault's hashing both use it,
//! and it depends on neither.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use duckdb::arrow::array::{Array, AsArray};
use duckdb::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};

/// Decimal digits of `v` into `out`.
pub fn push_digits(out: &mut Vec<u8>, v: u128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    if let Ok(mut small) = u64::try_from(v) {
        // u64 division is much cheaper than u128's; nearly every value fits.
        loop {
            i -= 1;
            buf[i] = b'0' + (small % 10) as u8;
            small /= 10;
            if small == 0 {
                break;
            }
        }
    } else {
        let mut v = v;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `v` zero-padded to `width` digits.
fn push_padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    let mut i = buf.len();
    while v > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let digits = (buf.len() - i).max(width);
    out.extend_from_slice(&buf[buf.len() - digits..]);
}

/// Canonical text of a decimal given as unscaled integer and scale: no thousands separator,
/// `.` as decimal point, trailing zeros (and a bare point) removed, no `-0`.
pub fn canonical_decimal(unscaled: i128, scale: u32, out: &mut Vec<u8>) {
    let mut digits = Vec::with_capacity(40);
    push_digits(&mut digits, unscaled.unsigned_abs());
    let scale = scale as usize;
    if unscaled < 0 {
        out.push(b'-');
    }
    let int_len = digits.len().saturating_sub(scale);
    if int_len == 0 {
        out.push(b'0');
    } else {
        out.extend_from_slice(&digits[..int_len]);
    }
    // The fraction: `scale` digits, left-padded with zeros, trailing zeros dropped.
    let frac = &digits[int_len..];
    let pad = scale - frac.len();
    let kept = frac.iter().rposition(|&d| d != b'0').map_or(0, |p| p + 1);
    if kept > 0 {
        out.push(b'.');
        out.extend(std::iter::repeat_n(b'0', pad));
        out.extend_from_slice(&frac[..kept]);
    }
}

/// `YYYY-MM-DD`.
fn push_date(out: &mut Vec<u8>, d: NaiveDate) {
    let year = d.year();
    if (0..=9999).contains(&year) {
        push_padded(out, year as u32, 4);
    } else {
        out.extend_from_slice(d.format("%Y").to_string().as_bytes());
    }
    out.push(b'-');
    push_padded(out, d.month(), 2);
    out.push(b'-');
    push_padded(out, d.day(), 2);
}

/// Canonical text of the cell at `row` appended to `out`; `false` when the cell is NULL.
/// Text is trimmed; typed values are written in one form whatever the source wrote.
pub fn canonical_into(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> bool {
    if array.is_null(row) {
        return false;
    }
    match array.data_type() {
        DataType::Utf8 => {
            out.extend_from_slice(array.as_string::<i32>().value(row).trim().as_bytes())
        }
        DataType::Int64 => {
            let v = array.as_primitive::<Int64Type>().value(row);
            if v < 0 {
                out.push(b'-');
            }
            push_digits(out, u128::from(v.unsigned_abs()));
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            // -0.0 and 0.0 are the same number.
            let v = if v == 0.0 { 0.0 } else { v };
            out.extend_from_slice(v.to_string().as_bytes());
        }
        DataType::Decimal128(_, scale) => canonical_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale as u32,
            out,
        ),
        DataType::Boolean => out.extend_from_slice(if array.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            match NaiveDate::from_num_days_from_ce_opt(days + 719_163) {
                Some(d) => push_date(out, d),
                None => out.extend_from_slice(format!("date:{days}").as_bytes()),
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            canonical_timestamp(micros, out);
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let micros = array.as_primitive::<Time64MicrosecondType>().value(row);
            canonical_time(micros, out);
        }
        other => {
            // Every staged type is listed above; this keeps hashing total if one is added.
            out.extend_from_slice(format!("{other}:{row}").as_bytes());
        }
    }
    true
}

/// ISO 8601 without offset: `YYYY-MM-DDTHH:MM:SS`, then `.ffffff` with trailing zeros removed.
pub fn canonical_timestamp(micros: i64, out: &mut Vec<u8>) {
    match DateTime::from_timestamp_micros(micros) {
        Some(dt) => {
            let t = dt.naive_utc();
            push_date(out, t.date());
            out.push(b'T');
            push_clock(out, t.hour(), t.minute(), t.second(), micros);
        }
        None => out.extend_from_slice(format!("timestamp:{micros}").as_bytes()),
    }
}

/// A time of day, microseconds since midnight: `HH:MM:SS`, then `.ffffff` with trailing
/// zeros removed, as in a timestamp.
pub fn canonical_time(micros: i64, out: &mut Vec<u8>) {
    if !(0..86_400_000_000).contains(&micros) {
        out.extend_from_slice(format!("time:{micros}").as_bytes());
        return;
    }
    let seconds = (micros / 1_000_000) as u32;
    push_clock(out, seconds / 3600, seconds / 60 % 60, seconds % 60, micros);
}

/// `HH:MM:SS` and the fraction of a second in `micros`, if any.
fn push_clock(out: &mut Vec<u8>, hour: u32, minute: u32, second: u32, micros: i64) {
    push_padded(out, hour, 2);
    out.push(b':');
    push_padded(out, minute, 2);
    out.push(b':');
    push_padded(out, second, 2);
    let frac = micros.rem_euclid(1_000_000) as u32;
    if frac != 0 {
        let mut digits = Vec::with_capacity(6);
        push_padded(&mut digits, frac, 6);
        let kept = digits.iter().rposition(|&d| d != b'0').map_or(0, |p| p + 1);
        out.push(b'.');
        out.extend_from_slice(&digits[..kept]);
    }
}
