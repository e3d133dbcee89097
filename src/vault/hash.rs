//! Vault stage, hashing: recipe v1 for hub keys (`hk`) and row hashes (`hashdiff`).
//!
//! This module alone builds hash input. Changing anything here orphans every stored key,
//! so the recipe is versioned, recorded in `meta.vault`, and pinned by golden vectors.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate};
use duckdb::arrow::array::{Array, AsArray};
use duckdb::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};

/// Version of the recipe below; stored in the vault.
pub const RECIPE_VERSION: &str = "v1";
/// One-line description of the recipe, stored in the vault next to its version.
pub const RECIPE: &str = "blake3; values trimmed, typed values in canonical text; \
    each value = 1 byte (0 null, 1 value) + u32-le byte length + utf-8 bytes; \
    first 16 bytes as lowercase hex";

/// BLAKE3 context for deriving the hashing key from a secret.
const KEY_CONTEXT: &str = "ingestor 2026 vault hash key v1";

/// Computes keys and hashdiffs, plain or keyed.
#[derive(Clone)]
pub struct RecipeHasher {
    key: Option<[u8; 32]>,
}

impl RecipeHasher {
    /// Plain BLAKE3.
    pub fn plain() -> Self {
        RecipeHasher { key: None }
    }

    /// Keyed BLAKE3, the key derived from a secret.
    pub fn keyed(secret: &str) -> Self {
        RecipeHasher {
            key: Some(blake3::derive_key(KEY_CONTEXT, secret.as_bytes())),
        }
    }

    /// Whether a key is used.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// A value that identifies the key without revealing it: the keyed hash of a constant.
    /// Stored in the vault so that a load with another key is refused.
    pub fn key_check(&self) -> String {
        match &self.key {
            None => "none".into(),
            Some(_) => self.hex(b"ingestor key check"),
        }
    }

    /// First 16 bytes of the (keyed) BLAKE3 of `input`, as lowercase hex.
    pub fn hex(&self, input: &[u8]) -> String {
        let hash = match &self.key {
            None => blake3::hash(input),
            Some(k) => blake3::keyed_hash(k, input),
        };
        let mut out = String::with_capacity(32);
        for b in &hash.as_bytes()[..16] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// Appends values in the recipe's encoding: no delimiter can collide, NULL differs from "".
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Start a new list of values.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Append one value.
    pub fn push(&mut self, value: Option<&str>) {
        match value {
            None => {
                self.buf.push(0);
                self.buf.extend_from_slice(&0u32.to_le_bytes());
            }
            Some(v) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(v.as_bytes());
            }
        }
    }

    /// The encoded bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Encode a whole list of values at once.
pub fn encode(values: &[Option<&str>]) -> Vec<u8> {
    let mut enc = Encoder::default();
    for v in values {
        enc.push(*v);
    }
    enc.buf
}

/// Canonical text of a decimal given as unscaled integer and scale: no thousands separator,
/// `.` as decimal point, trailing zeros (and a bare point) removed, no `-0`.
pub fn canonical_decimal(unscaled: i128, scale: u32, out: &mut String) {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    let frac_padded;
    let frac = if frac.len() < scale {
        frac_padded = format!("{}{frac}", "0".repeat(scale - frac.len()));
        frac_padded.as_str()
    } else {
        frac
    };
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if negative && unscaled != 0 {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
}

/// Canonical text of the cell at `row` into `out`; `false` when the cell is NULL.
/// Text is trimmed; typed values are written in one form whatever the source wrote.
pub fn canonical_cell(array: &dyn Array, row: usize, out: &mut String) -> bool {
    out.clear();
    if array.is_null(row) {
        return false;
    }
    match array.data_type() {
        DataType::Utf8 => out.push_str(array.as_string::<i32>().value(row).trim()),
        DataType::Int64 => {
            let _ = write!(out, "{}", array.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            // -0.0 and 0.0 are the same number.
            let v = if v == 0.0 { 0.0 } else { v };
            let _ = write!(out, "{v}");
        }
        DataType::Decimal128(_, scale) => canonical_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale as u32,
            out,
        ),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = NaiveDate::from_num_days_from_ce_opt(days + 719_163);
            match date {
                Some(d) => {
                    let _ = write!(out, "{}", d.format("%Y-%m-%d"));
                }
                None => {
                    let _ = write!(out, "date:{days}");
                }
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            canonical_timestamp(micros, out);
        }
        other => {
            // Every staged type is listed above; this keeps hashing total if one is added.
            let _ = write!(out, "{other}:{row}");
        }
    }
    true
}

/// ISO 8601 without offset: `YYYY-MM-DDTHH:MM:SS`, then `.ffffff` with trailing zeros removed.
pub fn canonical_timestamp(micros: i64, out: &mut String) {
    match DateTime::from_timestamp_micros(micros) {
        Some(dt) => {
            let _ = write!(out, "{}", dt.naive_utc().format("%Y-%m-%dT%H:%M:%S"));
            let frac = micros.rem_euclid(1_000_000);
            if frac != 0 {
                let digits = format!("{frac:06}");
                out.push('.');
                out.push_str(digits.trim_end_matches('0'));
            }
        }
        None => {
            let _ = write!(out, "timestamp:{micros}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn decimals_have_one_canonical_form() {
        let cases = [
            (12345, 2, "123.45"),
            (12300, 2, "123"),
            (12340, 2, "123.4"),
            (-5, 2, "-0.05"),
            (0, 2, "0"),
            (7, 0, "7"),
            (-120, 1, "-12"),
        ];
        for (unscaled, scale, want) in cases {
            let mut s = String::new();
            canonical_decimal(unscaled, scale, &mut s);
            assert_eq!(s, want, "{unscaled} scale {scale}");
        }
    }

    #[test]
    fn timestamps_drop_trailing_zero_fractions() {
        let mut s = String::new();
        canonical_timestamp(1_700_000_000_000_000, &mut s);
        assert_eq!(s, "2023-11-14T22:13:20");
        s.clear();
        canonical_timestamp(1_700_000_000_250_000, &mut s);
        assert_eq!(s, "2023-11-14T22:13:20.25");
    }

    /// Golden vectors: computed independently of this code (see tests/golden/README.md).
    #[test]
    fn golden_vectors_v1() {
        let text = include_str!("../../tests/golden/hash_v1.json");
        let doc: Value = serde_json::from_str(text).expect("golden json");
        assert_eq!(doc["recipe"], RECIPE_VERSION);
        let cases = doc["cases"].as_array().expect("cases");
        assert!(cases.len() >= 8);
        for case in cases {
            let values: Vec<Option<&str>> = case["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| v.as_str())
                .collect();
            let hasher = match case["key_secret"].as_str() {
                Some(secret) => RecipeHasher::keyed(secret),
                None => RecipeHasher::plain(),
            };
            assert_eq!(
                hasher.hex(&encode(&values)),
                case["hash"].as_str().expect("hash"),
                "case {}",
                case["name"]
            );
        }
    }

    proptest! {
        #[test]
        fn deterministic(values in proptest::collection::vec(proptest::option::of(".*"), 0..6)) {
            let v: Vec<Option<&str>> = values.iter().map(|s| s.as_deref()).collect();
            let h = RecipeHasher::plain();
            prop_assert_eq!(h.hex(&encode(&v)), h.hex(&encode(&v)));
        }

        #[test]
        fn no_separator_collisions(a in ".*", b in ".*", c in ".*", d in ".*") {
            // Two lists hash alike only if they are the same list.
            prop_assume!((a.as_str(), b.as_str()) != (c.as_str(), d.as_str()));
            let h = RecipeHasher::plain();
            prop_assert_ne!(
                h.hex(&encode(&[Some(&a), Some(&b)])),
                h.hex(&encode(&[Some(&c), Some(&d)]))
            );
        }

        #[test]
        fn joined_values_differ_from_split_ones(a in ".*", b in ".*") {
            let joined = format!("{a}{b}");
            let h = RecipeHasher::plain();
            prop_assert_ne!(
                h.hex(&encode(&[Some(&a), Some(&b)])),
                h.hex(&encode(&[Some(&joined)]))
            );
        }

        #[test]
        fn null_differs_from_empty_and_keys_differ(prefix in proptest::collection::vec(".*", 0..3)) {
            let mut with_null: Vec<Option<&str>> = prefix.iter().map(|s| Some(s.as_str())).collect();
            let mut with_empty = with_null.clone();
            with_null.push(None);
            with_empty.push(Some(""));
            let plain = RecipeHasher::plain();
            let keyed = RecipeHasher::keyed("k");
            prop_assert_ne!(plain.hex(&encode(&with_null)), plain.hex(&encode(&with_empty)));
            prop_assert_ne!(plain.hex(&encode(&with_null)), keyed.hex(&encode(&with_null)));
        }
    }
}
