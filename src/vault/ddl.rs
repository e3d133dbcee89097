//! Vault stage, DDL: schemas, meta tables, hubs, satellites and the views for people.
//! Everything here is idempotent.

use duckdb::{params, Connection, OptionalExt};
use serde::{Deserialize, Serialize};

use super::hash::{RecipeHasher, RECIPE, RECIPE_VERSION};
use crate::defs::Definitions;
use crate::error::VaultError;
use crate::validate::Contract;

/// Version of the vault's table layout.
pub const FORMAT_VERSION: &str = "1";

/// Quote an identifier for DuckDB.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string literal for DuckDB.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

const META: &str = r#"
CREATE SCHEMA IF NOT EXISTS vault;
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.vault (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta.runs (
    run_id BIGINT NOT NULL, command VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    status VARCHAR, exit_code INTEGER, units_loaded BIGINT, units_skipped BIGINT,
    units_failed BIGINT);
CREATE TABLE IF NOT EXISTS meta.loads (
    run_id BIGINT NOT NULL, source VARCHAR NOT NULL, file_hash VARCHAR, path VARCHAR,
    satellite VARCHAR, rows_read BIGINT, new_keys BIGINT, new_rows BIGINT,
    changed_rows BIGINT, unchanged_rows BIGINT, rejected_rows BIGINT, duplicate_keys BIGINT,
    status VARCHAR NOT NULL, error VARCHAR, loaded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS meta.files (
    file_hash VARCHAR NOT NULL, source VARCHAR NOT NULL, original_path VARCHAR, size BIGINT,
    first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS meta.satellites (
    source VARCHAR NOT NULL, table_name VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
    columns VARCHAR NOT NULL, tags VARCHAR NOT NULL, created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS meta.file_stats (
    source VARCHAR NOT NULL, path VARCHAR NOT NULL, size BIGINT, mtime_ns BIGINT,
    ctime_ns BIGINT, inode UBIGINT, file_hash VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS meta.state (
    source VARCHAR NOT NULL, key VARCHAR NOT NULL, value VARCHAR, updated_at TIMESTAMPTZ);
"#;

/// A satellite column as recorded in `meta.satellites.columns`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnRecord {
    /// Source column name.
    pub name: String,
    /// Field type, as written in definitions.
    #[serde(rename = "type")]
    pub ty: String,
    /// Tag field the column carries, if any.
    pub field: Option<String>,
}

/// A row of `meta.satellites`.
#[derive(Debug, Clone)]
pub struct SatelliteRecord {
    pub source: String,
    pub table: String,
    pub columns: Vec<ColumnRecord>,
    pub tags: Vec<String>,
    pub created_at: String,
}

/// Create the schemas and meta tables, record or check the hash recipe, create a hub per
/// tag and the views. Run once per write session, before any load.
pub fn ensure(
    conn: &Connection,
    defs: &Definitions,
    hasher: &RecipeHasher,
) -> Result<(), VaultError> {
    // When the vault was set up for these very definitions, only the recipe is checked:
    // a sync with nothing new to load should cost next to nothing.
    let fingerprint = definitions_fingerprint(defs);
    let recorded: Option<String> = conn
        .query_row(
            "SELECT value FROM meta.vault WHERE key = 'definitions'",
            [],
            |r| r.get(0),
        )
        .ok();
    if recorded.as_deref() == Some(fingerprint.as_str()) {
        return check_recipe(conn, hasher);
    }
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(VaultError::db("cannot start the set-up transaction"))?;
    let result = ensure_inner(conn, defs, hasher).and_then(|()| {
        conn.execute("DELETE FROM meta.vault WHERE key = 'definitions'", [])
            .and_then(|_| {
                conn.execute(
                    "INSERT INTO meta.vault VALUES ('definitions', ?)",
                    params![fingerprint],
                )
            })
            .map(|_| ())
            .map_err(VaultError::db("cannot record the definitions"))
    });
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end)
        .map_err(VaultError::db("cannot commit the vault set-up"))?;
    result
}

fn ensure_inner(
    conn: &Connection,
    defs: &Definitions,
    hasher: &RecipeHasher,
) -> Result<(), VaultError> {
    conn.execute_batch(META)
        .map_err(VaultError::db("cannot create the meta tables"))?;
    check_recipe(conn, hasher)?;
    for tag in defs.tags.keys() {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS vault.{} (hk UUID NOT NULL, business_key VARCHAR, \
             key_namespace VARCHAR, load_ts TIMESTAMPTZ NOT NULL, record_source VARCHAR NOT NULL, \
             run_id BIGINT NOT NULL)",
            ident(&format!("hub_{tag}"))
        ))
        .map_err(VaultError::db(format!(
            "cannot create the hub of tag `{tag}`"
        )))?;
    }
    refresh_views(conn, defs)
}

/// What the vault's hubs and views depend on: tags with their fields, sources with their
/// tags and mappings.
fn definitions_fingerprint(defs: &Definitions) -> String {
    let mut enc = super::hash::Encoder::default();
    // The DDL itself: a new version of ingestor that adds a meta table sets up again.
    enc.push(Some(META));
    enc.push(Some(FORMAT_VERSION));
    for (id, tag) in &defs.tags {
        enc.push(Some(id));
        for (name, field) in &tag.fields {
            enc.push(Some(&format!("{name}:{}:{}", field.ty, field.nullable)));
        }
    }
    for (id, source) in &defs.sources {
        enc.push(Some(id));
        enc.push(Some(&source.tags.join(",")));
        for (field, column) in &source.fields {
            enc.push(Some(&format!("{field}={column}")));
        }
    }
    RecipeHasher::plain().hex(enc.bytes())
}

/// The recipe this vault was written with must be the one in use: never mix two.
fn check_recipe(conn: &Connection, hasher: &RecipeHasher) -> Result<(), VaultError> {
    let wanted = [
        ("format_version", FORMAT_VERSION.to_string()),
        ("hash_recipe", RECIPE_VERSION.to_string()),
        ("hash_algorithm", "blake3".to_string()),
        ("hash_keyed", hasher.is_keyed().to_string()),
        ("hash_key_check", hasher.key_check()),
        ("hash_normalisation", RECIPE.to_string()),
        ("key_format", "uuid".to_string()),
        ("storage_version", crate::db::STORAGE_VERSION.to_string()),
    ];
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta.vault")
        .map_err(VaultError::db("cannot read meta.vault"))?;
    let stored: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(VaultError::db("cannot read meta.vault"))?;
    if stored.is_empty() {
        for (key, value) in &wanted {
            conn.execute("INSERT INTO meta.vault VALUES (?, ?)", params![key, value])
                .map_err(VaultError::db("cannot record the hash recipe"))?;
        }
        return Ok(());
    }
    for (key, value) in &wanted {
        if *key == "storage_version" || *key == "definitions" {
            continue;
        }
        let have = stored
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        if have != Some(value.as_str()) {
            let why = if key.starts_with("hash_key") {
                "the vault was written with a different hash key setting ([hash] key_secret \
                 in ingestor.toml, or the secret's value changed)"
                    .to_string()
            } else {
                format!(
                    "the vault records {key} = {}, this ingestor uses {value}",
                    have.unwrap_or("(nothing)")
                )
            };
            return Err(VaultError::Refused(format!(
                "refusing to load: {why}; keys would not match the ones stored"
            )));
        }
    }
    Ok(())
}

/// All satellites recorded in the vault, oldest first.
pub fn satellites(conn: &Connection) -> Result<Vec<SatelliteRecord>, VaultError> {
    let mut stmt = conn
        .prepare(
            "SELECT source, table_name, columns, tags, strftime(created_at::TIMESTAMP, '%Y-%m-%d %H:%M:%S') \
             FROM meta.satellites ORDER BY created_at, table_name",
        )
        .map_err(VaultError::db("cannot read meta.satellites"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(VaultError::db("cannot read meta.satellites"))?;
    rows.into_iter()
        .map(|(source, table, columns, tags, created_at)| {
            let bad = |e: serde_json::Error| {
                VaultError::Refused(format!("meta.satellites row of `{table}` is damaged: {e}"))
            };
            Ok(SatelliteRecord {
                columns: serde_json::from_str(&columns).map_err(bad)?,
                tags: serde_json::from_str(&tags).map_err(bad)?,
                source,
                table: table.clone(),
                created_at,
            })
        })
        .collect()
}

/// The satellite of `source` for this schema: the existing one with the same fingerprint,
/// or a new table named by its creation time. Call inside the unit's transaction.
pub fn satellite_for(
    conn: &Connection,
    defs: &Definitions,
    source: &str,
    contract: &Contract,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, VaultError> {
    let fingerprint = contract.fingerprint();
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT table_name FROM meta.satellites WHERE source = ? AND fingerprint = ?",
        )
        .and_then(|mut s| s.query_row(params![source, fingerprint], |r| r.get(0)))
        .optional()
        .map_err(VaultError::db("cannot read meta.satellites"))?;
    if let Some(table) = existing {
        return Ok(table);
    }
    let base = format!("sat_{source}__{}", now.format("%Y%m%dT%H%M%S"));
    let taken: Vec<String> = satellites(conn)?.into_iter().map(|s| s.table).collect();
    let mut table = base.clone();
    let mut n = 2;
    while taken.contains(&table) {
        table = format!("{base}_{n}");
        n += 1;
    }
    let mut cols = String::from(
        "hk UUID NOT NULL, load_ts TIMESTAMPTZ NOT NULL, hashdiff UUID NOT NULL, \
         record_source VARCHAR NOT NULL, file_hash VARCHAR NOT NULL, row_number BIGINT, \
         run_id BIGINT NOT NULL",
    );
    for c in &contract.columns {
        cols.push_str(&format!(", {} {}", ident(&c.name), c.ty.sql()));
    }
    conn.execute_batch(&format!("CREATE TABLE vault.{} ({cols})", ident(&table)))
        .map_err(VaultError::db(format!("cannot create satellite `{table}`")))?;
    let records: Vec<ColumnRecord> = contract
        .columns
        .iter()
        .map(|c| ColumnRecord {
            name: c.name.clone(),
            ty: c.ty.to_string(),
            field: c.field.as_ref().map(|f| f.field.clone()),
        })
        .collect();
    let tags = defs
        .sources
        .get(source)
        .map(|s| s.tags.clone())
        .unwrap_or_default();
    conn.execute(
        "INSERT INTO meta.satellites VALUES (?, ?, ?, ?, ?, ?::TIMESTAMPTZ)",
        params![
            source,
            table,
            fingerprint,
            serde_json::to_string(&records).expect("columns serialise"),
            serde_json::to_string(&tags).expect("tags serialise"),
            now.to_rfc3339()
        ],
    )
    .map_err(VaultError::db("cannot record the new satellite"))?;
    refresh_views(conn, defs)?;
    Ok(table)
}

/// (Re)create `main.<tag>` and `main.<source>` from the satellites the vault holds.
pub fn refresh_views(conn: &Connection, defs: &Definitions) -> Result<(), VaultError> {
    let sats = satellites(conn)?;
    for (tag_id, tag) in &defs.tags {
        let carrying: Vec<&SatelliteRecord> = sats
            .iter()
            .filter(|s| match defs.sources.get(&s.source) {
                Some(src) => src.tags.contains(tag_id),
                None => s.tags.contains(tag_id),
            })
            .collect();
        let fields: Vec<String> = tag
            .fields
            .iter()
            .map(|(name, def)| format!("CAST({0} AS {1}) AS {0}", ident(name), def.ty.sql()))
            .collect();
        let body = if carrying.is_empty() {
            let nulls: Vec<String> = tag
                .fields
                .iter()
                .map(|(name, def)| format!("NULL::{} AS {}", def.ty.sql(), ident(name)))
                .collect();
            format!(
                "SELECT NULL::UUID AS hk, {}, NULL::VARCHAR AS record_source, \
                 NULL::TIMESTAMPTZ AS load_ts WHERE false",
                nulls.join(", ")
            )
        } else {
            let parts: Vec<String> = carrying
                .iter()
                .map(|sat| {
                    let cols: Vec<String> = tag
                        .fields
                        .iter()
                        .map(|(name, def)| {
                            match sat.columns.iter().find(|c| c.field.as_deref() == Some(name)) {
                                Some(c) => format!("{} AS {}", ident(&c.name), ident(name)),
                                None => format!("NULL::{} AS {}", def.ty.sql(), ident(name)),
                            }
                        })
                        .collect();
                    format!(
                        "SELECT hk, {}, record_source, load_ts, \"row_number\" AS row_pos FROM vault.{}",
                        cols.join(", "),
                        ident(&sat.table)
                    )
                })
                .collect();
            format!(
                "SELECT hk, {}, record_source, load_ts FROM ({}) \
                 QUALIFY row_number() OVER (PARTITION BY hk ORDER BY load_ts DESC, row_pos DESC) = 1",
                fields.join(", "),
                parts.join(" UNION ALL ")
            )
        };
        conn.execute_batch(&format!(
            "CREATE OR REPLACE VIEW main.{} AS {body}",
            ident(tag_id)
        ))
        .map_err(VaultError::db(format!(
            "cannot create the view of tag `{tag_id}`"
        )))?;
    }
    let mut by_source: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for s in &sats {
        by_source.entry(&s.source).or_default().push(&s.table);
    }
    for (source, tables) in by_source {
        let body: Vec<String> = tables
            .iter()
            .map(|t| format!("SELECT * FROM vault.{}", ident(t)))
            .collect();
        conn.execute_batch(&format!(
            "CREATE OR REPLACE VIEW main.{} AS {}",
            ident(source),
            body.join(" UNION ALL BY NAME ")
        ))
        .map_err(VaultError::db(format!(
            "cannot create the view of source `{source}`"
        )))?;
    }
    Ok(())
}
