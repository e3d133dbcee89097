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
    /// Tag field -> source column, where the names differ.
    #[serde(default)]
    pub fields: IndexMap<String, String>,
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

    /// The source column that carries a tag field.
    pub fn column_for<'a>(&'a self, field: &'a str) -> &'a str {
        self.fields.get(field).map(String::as_str).unwrap_or(field)
    }
}
