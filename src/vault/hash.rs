//! Vault stage, hashing: recipe v1 for hub keys (`hk`) and row hashes (`hashdiff`).
//!
//! This module alone builds hash input. Changing anything here orphans every stored key,
//! so the recipe is versioned, recorded in `meta.vault`, and pinned by golden vectors.

use duckdb::arrow::array::Array;

use crate::canonical::{canonical_into, push_digits};

/// Version of the recipe below; stored in the vault.
pub const RECIPE_VERSION: &str = "v1";
/// One-line description of the recipe, stored in the vault next to its version.
pub const RECIPE: &str = "blake3; values trimmed, typed values in canonical text; \
    each value = 1 byte (0 null, 1 value) + u32-le byte length + utf-8 bytes; \
    first 16 bytes, stored as UUID (the 32 lowercase hex digits, with dashes)";

/// BLAKE3 context for deriving the hashing key from a secret (vaults from before the
/// key derivation was slow; kept so that they keep loading).
const KEY_CONTEXT: &str = "ingestor 2026 vault hash key v1";

/// Argon2id cost of deriving a vault key: 64 MiB, 3 passes, 1 lane (about a third of a
/// second here, once per command; every guess at the secret costs the same).
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 1;

/// How a vault's key is derived from its secret, as `meta.vault.hash_kdf` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kdf {
    /// `blake3 derive_key`: fast; vaults written before the slow derivation.
    Blake3,
    /// Argon2id with a random salt kept in the lake (`vault-key-salt`).
    Argon2id {
        salt: [u8; 16],
        m: u32,
        t: u32,
        p: u32,
    },
}

impl Kdf {
    /// A new derivation with this salt and today's costs.
    pub fn argon2id(salt: [u8; 16]) -> Kdf {
        Kdf::Argon2id {
            salt,
            m: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
        }
    }

    /// As `meta.vault` records it: `blake3-derive-key`, or
    /// `argon2id m=65536 t=3 p=1 salt=<32 hex digits>`.
    pub fn describe(&self) -> String {
        match self {
            Kdf::Blake3 => "blake3-derive-key".into(),
            Kdf::Argon2id { salt, m, t, p } => {
                format!("argon2id m={m} t={t} p={p} salt={}", hex_string(salt))
            }
        }
    }

    /// Read what `describe` wrote.
    pub fn parse(text: &str) -> Option<Kdf> {
        if text == "blake3-derive-key" {
            return Some(Kdf::Blake3);
        }
        let rest = text.strip_prefix("argon2id ")?;
        let (mut m, mut t, mut p, mut salt) = (None, None, None, None);
        for part in rest.split_whitespace() {
            let (k, v) = part.split_once('=')?;
            match k {
                "m" => m = v.parse().ok(),
                "t" => t = v.parse().ok(),
                "p" => p = v.parse().ok(),
                "salt" => salt = parse_salt(v),
                _ => return None,
            }
        }
        Some(Kdf::Argon2id {
            salt: salt?,
            m: m?,
            t: t?,
            p: p?,
        })
    }
}

/// 32 hex digits as a 16-byte salt.
pub fn parse_salt(hex: &str) -> Option<[u8; 16]> {
    let hex = hex.trim();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Computes keys and hashdiffs, plain or keyed.
#[derive(Clone)]
pub struct RecipeHasher {
    key: Option<[u8; 32]>,
    /// How the key was derived, when there is one.
    kdf: Option<Kdf>,
}

impl RecipeHasher {
    /// Plain BLAKE3.
    pub fn plain() -> Self {
        RecipeHasher {
            key: None,
            kdf: None,
        }
    }

    /// Keyed BLAKE3, the key derived from a secret with `blake3 derive_key` (fast: for
    /// vaults from before the slow derivation, and tests).
    pub fn keyed(secret: &str) -> Self {
        RecipeHasher {
            key: Some(blake3::derive_key(KEY_CONTEXT, secret.as_bytes())),
            kdf: Some(Kdf::Blake3),
        }
    }

    /// Keyed BLAKE3, the key derived from a secret as `kdf` says.
    pub fn keyed_with(secret: &str, kdf: &Kdf) -> Result<Self, String> {
        match kdf {
            Kdf::Blake3 => Ok(Self::keyed(secret)),
            Kdf::Argon2id { salt, m, t, p } => {
                let params = argon2::Params::new(*m, *t, *p, Some(32))
                    .map_err(|e| format!("the key derivation's parameters: {e}"))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut key = [0u8; 32];
                argon
                    .hash_password_into(secret.as_bytes(), salt, &mut key)
                    .map_err(|e| format!("cannot derive the vault key: {e}"))?;
                Ok(RecipeHasher {
                    key: Some(key),
                    kdf: Some(kdf.clone()),
                })
            }
        }
    }

    /// How the key was derived (`None` when plain).
    pub fn kdf(&self) -> Option<&Kdf> {
        self.kdf.as_ref()
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

    /// First 16 bytes of the (keyed) BLAKE3 of `input`.
    pub fn hash16(&self, input: &[u8]) -> [u8; 16] {
        let hash = match &self.key {
            None => blake3::hash(input),
            Some(k) => blake3::keyed_hash(k, input),
        };
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash.as_bytes()[..16]);
        out
    }

    /// First 16 bytes of the (keyed) BLAKE3 of `input`, as lowercase hex.
    pub fn hex(&self, input: &[u8]) -> String {
        hex_string(&self.hash16(input))
    }
}

/// 16 bytes as 32 lowercase hex digits, in a string.
pub fn hex_string(bytes: &[u8; 16]) -> String {
    let mut out = [0u8; 32];
    hex16(bytes, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// 16 bytes as 32 lowercase hex digits, without formatting machinery (it runs twice a row).
pub fn hex16(bytes: &[u8; 16], out: &mut [u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
}

impl RecipeHasher {}

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

    /// Append a whole number as one value, its decimal digits as text (no allocation).
    pub fn push_number(&mut self, v: u64) {
        self.buf.push(1);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let start = self.buf.len();
        push_digits(&mut self.buf, u128::from(v));
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..start].copy_from_slice(&len.to_le_bytes());
    }

    /// Append one value given as UTF-8 bytes.
    pub fn push_bytes(&mut self, value: &[u8]) {
        self.buf.push(1);
        self.buf
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(value);
    }

    /// Append raw bytes of an encoding made elsewhere (several values at once).
    pub fn extend(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }

    /// Append the canonical text of a cell as one value, written straight into the
    /// encoding; returns where its text is in `bytes()`, or `None` for NULL.
    pub fn push_cell(&mut self, array: &dyn Array, row: usize) -> Option<std::ops::Range<usize>> {
        self.buf.push(1);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let start = self.buf.len();
        if !canonical_into(array, row, &mut self.buf) {
            self.buf[len_at - 1] = 0;
            return None;
        }
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..start].copy_from_slice(&len.to_le_bytes());
        Some(start..self.buf.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_derivations_are_recorded_and_read_back() {
        let kdf = Kdf::argon2id([7u8; 16]);
        let text = kdf.describe();
        assert_eq!(
            text,
            "argon2id m=65536 t=3 p=1 salt=07070707070707070707070707070707"
        );
        assert_eq!(Kdf::parse(&text), Some(kdf));
        assert_eq!(Kdf::parse("blake3-derive-key"), Some(Kdf::Blake3));
        assert_eq!(Kdf::parse("argon2id m=1 t=1"), None);
    }

    #[test]
    fn the_slow_key_depends_on_the_salt_and_differs_from_the_fast_one() {
        let cheap = |salt| Kdf::Argon2id {
            salt,
            m: 64,
            t: 1,
            p: 1,
        };
        let a = RecipeHasher::keyed_with("secret", &cheap([1; 16])).expect("a");
        let b = RecipeHasher::keyed_with("secret", &cheap([2; 16])).expect("b");
        let a2 = RecipeHasher::keyed_with("secret", &cheap([1; 16])).expect("a2");
        let fast = RecipeHasher::keyed("secret");
        assert_eq!(a.key_check(), a2.key_check());
        assert_ne!(a.key_check(), b.key_check());
        assert_ne!(a.key_check(), fast.key_check());
        assert_eq!(fast.kdf(), Some(&Kdf::Blake3));
    }

    use crate::canonical::{canonical_decimal, canonical_time, canonical_timestamp};
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
            (5, 3, "0.005"),
            (-1_000_050, 4, "-100.005"),
            (i128::MAX, 2, "1701411834604692317316873037158841057.27"),
        ];
        for (unscaled, scale, want) in cases {
            let mut s = Vec::new();
            canonical_decimal(unscaled, scale, &mut s);
            assert_eq!(
                String::from_utf8(s).unwrap(),
                want,
                "{unscaled} scale {scale}"
            );
        }
    }

    #[test]
    fn numbers_encode_like_their_text() {
        for v in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut a = Encoder::default();
            a.push_number(v);
            assert_eq!(a.bytes(), encode(&[Some(&v.to_string())]), "{v}");
        }
    }

    #[test]
    fn timestamps_drop_trailing_zero_fractions() {
        let mut s = Vec::new();
        canonical_timestamp(1_700_000_000_000_000, &mut s);
        assert_eq!(s, b"2023-11-14T22:13:20");
        s.clear();
        canonical_timestamp(1_700_000_000_250_000, &mut s);
        assert_eq!(s, b"2023-11-14T22:13:20.25");
        s.clear();
        canonical_timestamp(-1, &mut s);
        assert_eq!(s, b"1969-12-31T23:59:59.999999");
    }

    #[test]
    fn times_are_written_like_a_timestamps_clock() {
        let mut s = Vec::new();
        canonical_time(0, &mut s);
        assert_eq!(s, b"00:00:00");
        s.clear();
        canonical_time(((13 * 60 + 5) * 60 + 9) * 1_000_000 + 250_000, &mut s);
        assert_eq!(s, b"13:05:09.25");
        s.clear();
        canonical_time(86_399_999_999, &mut s);
        assert_eq!(s, b"23:59:59.999999");
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
