//! Tag definitions (`tags/<tag>.toml`): the fields every source carrying the tag must have.

use indexmap::IndexMap;

use serde::Deserialize;

use super::field_type::FieldType;

/// A tag: a promise that every source carrying it has at least these fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// The tag name: the file stem. Set after parsing.
    #[serde(skip)]
    pub id: String,
    /// What the tag means, for people.
    #[serde(default)]
    pub description: String,
    /// Field name -> type and nullability, in the order the file writes them.
    pub fields: IndexMap<String, TagField>,
}

/// One field a tag promises.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagField {
    /// The field's type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Whether the field may be empty; fields are required unless they say otherwise.
    #[serde(default)]
    pub nullable: bool,
    /// What the field means, for people.
    #[serde(default)]
    pub description: String,
}
