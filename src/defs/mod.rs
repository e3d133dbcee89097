//! Definitions: `ingestor.toml`, `tags/` and `sources/`, parsed strictly and checked together.

pub mod field_type;
pub mod project;
pub mod source;
pub mod tag;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use field_type::FieldType;
pub use project::ProjectConfig;
pub use source::{
    sign_key, sign_key_sql, Derivation, FieldSource, KeyCase, Part, Source, SIGN_SPACE,
};
pub use tag::{Tag, TagField};

use crate::error::DefError;

/// Every definition of a project, loaded and checked.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The project folder; relative paths resolve against it.
    pub dir: PathBuf,
    /// `ingestor.toml`.
    pub project: ProjectConfig,
    /// Tags by name.
    pub tags: BTreeMap<String, Tag>,
    /// Sources by name.
    pub sources: BTreeMap<String, Source>,
}

/// A column a source must have because a tag promises it.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// Source column name.
    pub column: String,
    /// The part the column plays when the field is derived from several columns.
    pub part: Option<Part>,
    /// Tag field name.
    pub field: String,
    /// The first tag (in the source's order) that promises the field.
    pub tag: String,
    /// Type the tag gives the field.
    pub ty: FieldType,
    /// Whether the column may be empty: the field's rule, or always for a credit, debit
    /// or sign column.
    pub nullable: bool,
    /// Whether every promising tag allows the field itself to be empty.
    pub field_nullable: bool,
}

impl Required {
    /// Whether the column may be empty whatever the tag says: credit, debit and sign
    /// columns (a row needs one of credit and debit, which the contract checks).
    pub fn part_nullable(&self) -> bool {
        matches!(self.part, Some(Part::Credit | Part::Debit | Part::Sign))
    }
}

/// Bytes of a DuckDB memory size such as `96MB`, `1GiB` or `512KB`; `None` when it is
/// not one (DuckDB then says what is wrong with it).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..split].trim().parse().ok()?;
    let unit = match text[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "byte" | "bytes" => 1u64,
        "kb" | "kilobyte" | "kilobytes" => 1_000,
        "mb" | "megabyte" | "megabytes" => 1_000_000,
        "gb" | "gigabyte" | "gigabytes" => 1_000_000_000,
        "tb" | "terabyte" | "terabytes" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    Some((number * unit as f64) as u64)
}

/// `[a-z][a-z0-9_]*`: names that are safe inside table names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Options added after sources were first fingerprinted, as their `Debug` text when
/// left at their defaults, by reader: a definition that does not use them keeps the
/// fingerprint it had, so an upgrade does not reload every input. Add a line with each
/// new option.
const NEW_DEFAULTS: [(&str, &[&str]); 4] = [
    (
        "Csv(",
        &[
            ", period: None",
            ", period_format: None",
            ", continuation: None",
            ", sections: []",
            ", null_values: []",
        ],
    ),
    (
        "Excel(",
        &[
            ", period: None",
            ", period_format: None",
            ", null_values: []",
        ],
    ),
    (
        "Pdf(",
        &[", year: None", ", period: None", ", period_format: None"],
    ),
    // Derived amounts (`Derivation`), wherever they are.
    ("", &[", positive: []"]),
];

/// `source`'s `Debug` text without the defaults of options added later.
fn stable_debug(source: &Source) -> String {
    let full = format!("{source:?}");
    let reader = format!("{:?}", source.reader);
    let mut kept = reader.clone();
    for (kind, defaults) in NEW_DEFAULTS {
        if !kind.is_empty() && reader.starts_with(kind) {
            for d in defaults {
                kept = without_outside_strings(&kept, d);
            }
        }
    }
    without_new_defaults(&full.replacen(&reader, &kept, 1))
}

/// `text` without the defaults of options added later that may stand anywhere (a
/// derived amount's `positive`): what the fingerprint of a definition or a satellite
/// part hashes.
pub(crate) fn without_new_defaults(text: &str) -> String {
    let mut out = text.to_string();
    for (kind, defaults) in NEW_DEFAULTS {
        if kind.is_empty() {
            for d in defaults {
                out = without_outside_strings(&out, d);
            }
        }
    }
    out
}

/// `text` (`Debug` output) without `pattern` where it stands outside quoted strings: a
/// user's pattern or column name that happens to hold `, period: None` stays.
fn without_outside_strings(text: &str, pattern: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_string && rest.starts_with(pattern) {
            rest = &rest[pattern.len()..];
            continue;
        }
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl Definitions {
    /// Every secret the definitions name, with who names it.
    pub fn secret_names(&self) -> Vec<(String, String)> {
        let mut names = Vec::new();
        if let Some(key) = &self.project.hash.key_secret {
            names.push((key.clone(), "ingestor.toml [hash] key_secret".to_string()));
        }
        for source in self.sources.values() {
            for name in source.reader.kind().secrets() {
                names.push((name.to_string(), format!("source `{}`", source.id)));
            }
        }
        names
    }

    /// Load and check the project in `dir`.
    pub fn load(dir: &Path) -> Result<Self, DefError> {
        let project = ProjectConfig::load(dir)?;
        let tags_dir = dir.join(&project.tags);
        let sources_dir = dir.join(&project.sources);
        // Without a sources folder there is nothing to load: most likely the wrong folder,
        // which must not get an empty vault.
        if !sources_dir.is_dir() {
            return Err(DefError::NotAProject {
                dir: dir.to_path_buf(),
                sources: project.sources.display().to_string(),
                has_config: dir.join("ingestor.toml").is_file(),
            });
        }
        let mut tags = BTreeMap::new();
        for (id, path) in toml_files(&tags_dir)? {
            let mut tag: Tag = parse_file(&path)?;
            tag.id = id.clone();
            check_tag(&tag, &path)?;
            tags.insert(id, tag);
        }
        let mut sources = BTreeMap::new();
        for (id, path) in toml_files(&sources_dir)? {
            let mut source: Source = parse_file(&path)?;
            source.id = id.clone();
            sources.insert(id, (source, path));
        }
        let defs = Definitions {
            dir: dir.to_path_buf(),
            project,
            tags,
            sources: BTreeMap::new(),
        };
        let mut checked = BTreeMap::new();
        for (id, (mut source, path)) in sources {
            // Without `max_value_bytes`, the largest value is what the memory limit holds
            // safely: a fifth of it, at most 16 MiB.
            if let crate::readers::ReaderConfig::Csv(csv) = &mut source.reader {
                if csv.max_value_bytes.is_none() {
                    let limit = defs
                        .project
                        .duckdb
                        .memory_limit
                        .as_deref()
                        .and_then(parse_bytes)
                        .map_or(u64::MAX, |l| l / 5);
                    csv.max_value_bytes =
                        Some((crate::readers::csv::MAX_VALUE_BYTES as u64).min(limit) as usize);
                }
            }
            defs.check_source(&source, &path)?;
            checked.insert(id, source);
        }
        Ok(Definitions {
            sources: checked,
            ..defs
        })
    }

    /// What shapes the load of `source`, as 32 hex digits: its definition as parsed (reader
    /// options, fields, columns, keys, tags) and the fields of the tags it carries. An
    /// input loaded under another fingerprint is loaded again (the hashdiff keeps rows
    /// that did not change from being added twice). Comments and layout do not count.
    pub fn load_fingerprint(&self, source: &Source) -> String {
        // What does not shape the rows stays out: the description, and the value size
        // limit (taken from the memory limit when not given).
        let mut shaping = source.clone();
        shaping.description.clear();
        if let crate::readers::ReaderConfig::Csv(csv) = &mut shaping.reader {
            csv.max_value_bytes = None;
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(stable_debug(&shaping).as_bytes());
        for tag in &source.tags {
            if let Some(t) = self.tags.get(tag) {
                hasher.update(format!("\0{tag}:{:?}", t.fields).as_bytes());
            }
        }
        hasher.finalize().to_hex()[..32].to_string()
    }

    /// The DuckDB file of the vault.
    pub fn database_path(&self) -> PathBuf {
        self.dir.join(&self.project.database)
    }

    /// The lake folder.
    pub fn lake_path(&self) -> PathBuf {
        self.dir.join(&self.project.lake)
    }

    /// The error for a source name that no file in sources/ defines, listing those that do.
    pub fn unknown_source(&self, name: &str) -> DefError {
        let known: Vec<&str> = self.sources.keys().map(String::as_str).collect();
        DefError::UnknownSource {
            name: name.to_string(),
            known: if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            },
        }
    }

    /// The sources named, or all of them when none is named.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Source>, DefError> {
        if names.is_empty() {
            return Ok(self.sources.values().collect());
        }
        names
            .iter()
            .map(|n| self.sources.get(n).ok_or_else(|| self.unknown_source(n)))
            .collect()
    }

    /// Columns the source must have, one per distinct tag field, in tag order.
    pub fn required(&self, source: &Source) -> Vec<Required> {
        let mut out: Vec<Required> = Vec::new();
        for tag_id in &source.tags {
            let Some(tag) = self.tags.get(tag_id) else {
                continue;
            };
            for (field, def) in &tag.fields {
                if out.iter().any(|r| &r.field == field) {
                    for existing in out.iter_mut().filter(|r| &r.field == field) {
                        existing.nullable &= def.nullable || existing.part_nullable();
                        existing.field_nullable &= def.nullable;
                    }
                    continue;
                }
                let parts = match source.source_of(field) {
                    FieldSource::Column(column) => vec![(column, None)],
                    // Checked when the definitions were loaded.
                    FieldSource::Derived(d) => d
                        .columns()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(c, p)| (c, Some(p)))
                        .collect(),
                };
                for (column, part) in parts {
                    let mut req = Required {
                        column,
                        part,
                        field: field.clone(),
                        tag: tag_id.clone(),
                        ty: def.ty,
                        nullable: def.nullable,
                        field_nullable: def.nullable,
                    };
                    // Credit and debit may each be empty (the row-level rule is the
                    // contract's); a sign column is text and may be empty.
                    if req.part_nullable() {
                        req.nullable = true;
                    }
                    if req.part == Some(Part::Sign) {
                        req.ty = FieldType::Text;
                    }
                    out.push(req);
                }
            }
        }
        out
    }

    fn check_source(&self, source: &Source, path: &Path) -> Result<(), DefError> {
        let invalid = |key: &str, message: String| DefError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if !valid_name(&source.id) {
            return Err(invalid(
                "(file name)",
                format!(
                    "source name `{}` must match [a-z][a-z0-9_]* (it becomes a table name)",
                    source.id
                ),
            ));
        }
        if self.tags.contains_key(&source.id) {
            return Err(invalid(
                "(file name)",
                format!(
                    "source `{}` has the name of a tag; both become views in `main`",
                    source.id
                ),
            ));
        }
        if source.tags.is_empty() {
            return Err(invalid("tags", "expected at least one tag".into()));
        }
        for tag in &source.tags {
            if !self.tags.contains_key(tag) {
                let known: Vec<&str> = self.tags.keys().map(String::as_str).collect();
                return Err(invalid(
                    "tags",
                    format!(
                        "unknown tag `{tag}`, expected one of: {}",
                        if known.is_empty() {
                            "(no tags defined)".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        // One field promised by two tags must mean the same type.
        let mut seen: BTreeMap<&str, (&str, FieldType)> = BTreeMap::new();
        for tag_id in &source.tags {
            for (field, def) in &self.tags[tag_id].fields {
                if let Some((other, ty)) = seen.get(field.as_str()) {
                    if *ty != def.ty {
                        return Err(invalid(
                            "tags",
                            format!(
                                "field `{field}` is {ty} in tag `{other}` but {} in tag `{tag_id}`",
                                def.ty
                            ),
                        ));
                    }
                }
                seen.insert(field, (tag_id, def.ty));
            }
        }
        for (field, from) in &source.fields {
            if let FieldSource::Derived(d) = from {
                if let Err(message) = d.columns() {
                    return Err(invalid(&format!("fields.{field}"), message));
                }
                let numeric = seen.get(field.as_str()).is_none_or(|(_, ty)| {
                    matches!(
                        ty,
                        FieldType::Integer | FieldType::Float | FieldType::Decimal(..)
                    )
                });
                if !numeric {
                    return Err(invalid(
                        &format!("fields.{field}"),
                        "only a number (integer, decimal or float) can be derived".into(),
                    ));
                }
            }
            if !seen.contains_key(field.as_str()) {
                let known: Vec<&str> = seen.keys().copied().collect();
                return Err(invalid(
                    &format!("fields.{field}"),
                    format!(
                        "`{field}` is no field of the tags {:?}; expected one of: {}",
                        source.tags,
                        known.join(", ")
                    ),
                ));
            }
        }
        for req in self.required(source) {
            if let Some(ty) = source.columns.get(&req.column) {
                if *ty != req.ty {
                    return Err(invalid(
                        &format!("columns.\"{}\"", req.column),
                        format!(
                            "column `{}` carries tag field `{}` of type {}, so it cannot be typed {ty}",
                            req.column, req.field, req.ty
                        ),
                    ));
                }
            }
        }
        // DuckDB needs several times a value's size to store it; a value near its memory
        // limit makes it throw inside the load, which ends the process.
        if let crate::readers::ReaderConfig::Csv(csv) = &source.reader {
            let max = csv.max_value_bytes.map_or(0, |m| m as u64);
            let limit_text = self
                .project
                .duckdb
                .memory_limit
                .as_deref()
                .unwrap_or(project::DEFAULT_MEMORY_LIMIT);
            if let Some(limit) = parse_bytes(limit_text) {
                if max.saturating_mul(5) > limit {
                    return Err(invalid(
                        "reader.max_value_bytes",
                        format!(
                            "values of up to {max} bytes need a DuckDB memory_limit of at \
                             least five times that; ingestor.toml's [duckdb] memory_limit is \
                             {limit_text:?}: raise it, or lower max_value_bytes"
                        ),
                    ));
                }
            }
        }
        if let Some(pk) = &source.primary_key {
            if pk.is_empty() {
                return Err(invalid(
                    "primary_key",
                    "expected at least one column; omit the key for a content key".into(),
                ));
            }
        }
        if let Some(ns) = &source.key_namespace {
            if ns.trim().is_empty() {
                return Err(invalid(
                    "key_namespace",
                    "expected a non-empty namespace".into(),
                ));
            }
        }
        source
            .reader
            .check()
            .map_err(|(key, message)| invalid(&format!("reader.{key}"), message))
    }
}

fn check_tag(tag: &Tag, path: &Path) -> Result<(), DefError> {
    if !valid_name(&tag.id) {
        return Err(DefError::Invalid {
            path: path.to_path_buf(),
            key: "(file name)".into(),
            message: format!(
                "tag name `{}` must match [a-z][a-z0-9_]* (it becomes a table name)",
                tag.id
            ),
        });
    }
    if tag.fields.is_empty() {
        return Err(DefError::Invalid {
            path: path.to_path_buf(),
            key: "fields".into(),
            message: "expected at least one field".into(),
        });
    }
    Ok(())
}

/// `*.toml` files of a folder, by stem, sorted. A missing folder has none.
fn toml_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, DefError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DefError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| DefError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.push((stem.to_string(), path.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, DefError> {
    let text = std::fs::read_to_string(path).map_err(|source| DefError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| DefError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options added later are dropped from the fingerprint text at their defaults only
    /// outside quoted strings.
    #[test]
    fn new_defaults_are_dropped_outside_strings_only() {
        let text = r#"Csv(CsvConfig { path: "in", skip: ["Saldo, period: None \"x\", period: None"], period: None, ragged: None })"#;
        assert_eq!(
            without_outside_strings(text, ", period: None"),
            r#"Csv(CsvConfig { path: "in", skip: ["Saldo, period: None \"x\", period: None"], ragged: None })"#
        );
    }

    #[test]
    fn names_are_table_safe() {
        assert!(valid_name("bank_csv2"));
        assert!(!valid_name("Bank"));
        assert!(!valid_name("2bank"));
        assert!(!valid_name("bank-csv"));
        assert!(!valid_name(""));
    }
}
