//! Source definitions (`sources/<source>.toml`): where data comes from and how it maps to tags.

use indexmap::IndexMap;

use serde::Deserialize;

use super::field_type::FieldType;
use crate::readers::ReaderConfig;

/// How key parts are normalised before hashing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyCase {
    /// Keep the case the source wrote.
    #[default]
    Keep,
    /// Upper-case key parts, for sources that write the same key in varying case.
    Upper,
}

/// A source: one kind of input, read by one reader, carrying one or more tags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The source name: the file stem. Set after parsing.
    #[serde(skip)]
    pub id: String,
    /// What the source is, for people.
    #[serde(default)]
    pub description: String,
    /// Tags this source carries; each promises fields.
    pub tags: Vec<String>,
    /// Source columns that identify a row; omitted means a content key (DESIGN section 3).
    #[serde(default)]
    pub primary_key: Option<Vec<String>>,
    /// Namespace hashed into hub keys; defaults to the source name.
    #[serde(default)]
    pub key_namespace: Option<String>,
    /// Case normalisation of key parts.
    #[serde(default)]
    pub key_case: KeyCase,
    /// Tag field -> source column, where the names differ, or how the field is derived
    /// from several columns (`{ credit = "In", debit = "Out" }`).
    #[serde(default)]
    pub fields: IndexMap<String, FieldSource>,
    /// How inputs are found and read.
    pub reader: ReaderConfig,
    /// Types for source columns that no tag types.
    #[serde(default)]
    pub columns: IndexMap<String, FieldType>,
}

impl Source {
    /// The namespace hashed into this source's hub keys.
    pub fn namespace(&self) -> &str {
        self.key_namespace.as_deref().unwrap_or(&self.id)
    }

    /// Where a tag field comes from: a column (the field's own name when `[fields]` does
    /// not say), or a derivation.
    pub fn source_of(&self, field: &str) -> FieldSource {
        self.fields
            .get(field)
            .cloned()
            .unwrap_or_else(|| FieldSource::Column(field.to_string()))
    }
}

/// Where a tag field's value comes from: `amount = "Betrag"`, or one of
/// `{ credit = "Deposits", debit = "Withdrawals" }` (credit minus debit, either may be
/// empty), `{ column = "Betrag", sign = "S/H", negative = ["S"] }`, `{ column = "Amount",
/// negate = true }`. The satellite keeps the columns as written (typed); the tag's view
/// computes the field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldSource {
    /// One column.
    Column(String),
    /// Derived from several columns.
    Derived(Derivation),
}

/// The options of a derived field; `check` says which combinations mean something.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derivation {
    /// The column of money in (positive).
    #[serde(default)]
    pub credit: Option<String>,
    /// The column of money out (subtracted).
    #[serde(default)]
    pub debit: Option<String>,
    /// The column of the amount, with `sign` or `negate`.
    #[serde(default)]
    pub column: Option<String>,
    /// The column that says whether the amount is negative.
    #[serde(default)]
    pub sign: Option<String>,
    /// The values of `sign` that make the amount negative (compared trimmed, ignoring
    /// case; `""` is an empty sign).
    #[serde(default)]
    pub negative: Vec<String>,
    /// The values of `sign` that leave the amount as it is. When given, a sign in
    /// neither list fails the unit instead of counting as positive.
    #[serde(default)]
    pub positive: Vec<String>,
    /// The amount with its sign turned.
    #[serde(default)]
    pub negate: bool,
}

/// The part a column plays in a derived tag field; kept with the satellite's columns so
/// that the tag's view computes the field as the load meant it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Money in: added.
    Credit,
    /// Money out: subtracted.
    Debit,
    /// The amount, its sign turned.
    Negated,
    /// The amount, negative where the sign column holds one of `negative`; with
    /// `positive`, every sign must be in one of the lists.
    Signed {
        negative: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        positive: Vec<String>,
    },
    /// The sign column of a `Signed` amount.
    Sign,
}

/// The characters a sign is trimmed of, in the loader's check and in the view alike.
pub const SIGN_SPACE: [char; 7] = [' ', '\t', '\n', '\r', '\u{0B}', '\u{0C}', '\u{A0}'];

/// A sign as `negative` and `positive` compare it: trimmed of `SIGN_SPACE`, ASCII
/// letters in lower case (other letters as written, so that Rust and the view's SQL
/// cannot disagree on a case mapping).
pub fn sign_key(sign: &str) -> String {
    sign.trim_matches(SIGN_SPACE).to_ascii_lowercase()
}

/// The SQL of `sign_key` over the expression `sign` (NULL is the empty sign).
pub fn sign_key_sql(sign: &str) -> String {
    let space: Vec<String> = SIGN_SPACE
        .iter()
        .map(|c| format!("chr({})", u32::from(*c)))
        .collect();
    format!(
        "translate(trim(coalesce({sign}, ''), {}), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', \
         'abcdefghijklmnopqrstuvwxyz')",
        space.join(" || ")
    )
}

impl Part {
    /// The part as satellite schemas have always hashed it (its `Debug` text before
    /// `positive` existed): a satellite keeps its schema unless `positive` is used.
    pub fn fingerprint_text(&self) -> String {
        super::without_new_defaults(&format!("{self:?}"))
    }
}

impl Derivation {
    /// The columns the field needs, with their parts; or what is wrong with the options.
    pub fn columns(&self) -> Result<Vec<(String, Part)>, String> {
        let d = self;
        match (&d.credit, &d.debit, &d.column, &d.sign, d.negate) {
            (c, b, None, None, false) if c.is_some() || b.is_some() => {
                if c.is_some() && c == b {
                    return Err("`credit` and `debit` must be two columns".into());
                }
                if !d.negative.is_empty() || !d.positive.is_empty() {
                    return Err("`negative` and `positive` go with `column` and `sign`".into());
                }
                let mut out = Vec::new();
                if let Some(c) = c {
                    out.push((c.clone(), Part::Credit));
                }
                if let Some(b) = b {
                    out.push((b.clone(), Part::Debit));
                }
                Ok(out)
            }
            (None, None, Some(col), Some(sign), false) => {
                if d.negative.is_empty() {
                    return Err("`sign` needs `negative`: the values that make the amount negative, such as [\"S\"]".into());
                }
                if col == sign {
                    return Err("`column` and `sign` must be two columns".into());
                }
                Ok(vec![
                    (
                        col.clone(),
                        Part::Signed {
                            negative: d.negative.iter().map(|v| v.trim().to_string()).collect(),
                            positive: d.positive.iter().map(|v| v.trim().to_string()).collect(),
                        },
                    ),
                    (sign.clone(), Part::Sign),
                ])
            }
            (None, None, Some(col), None, true)
                if d.negative.is_empty() && d.positive.is_empty() =>
            {
                Ok(vec![(col.clone(), Part::Negated)])
            }
            _ => Err(
                "expected `{ credit = \"…\", debit = \"…\" }` (either may be left out), \
                      `{ column = \"…\", sign = \"…\", negative = [\"…\"] }` or \
                      `{ column = \"…\", negate = true }`"
                    .into(),
            ),
        }
    }
}
