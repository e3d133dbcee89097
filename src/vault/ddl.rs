//! Vault stage, DDL: hubs, satellites and the views for people (the meta tables are
//! `meta.rs`'s). Everything here is idempotent.

use chrono::{DateTime, Utc};
use duckdb::Connection;

use super::hash::{RecipeHasher, RECIPE, RECIPE_VERSION};
use super::meta::{self, ColumnRecord, SatelliteRecord};
use crate::db::{ident, literal, Transaction};
use crate::defs::{Definitions, Part};
use crate::error::VaultError;
use crate::validate::Contract;

/// Version of the vault's table layout.
pub const FORMAT_VERSION: &str = "1";

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
    if meta::vault_value(conn, "definitions").as_deref() == Some(fingerprint.as_str()) {
        return check_recipe(conn, hasher);
    }
    let tx = Transaction::begin(conn, "the vault set-up")?;
    meta::create(conn)?;
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
    refresh_views(conn, defs)?;
    meta::set_vault_value(conn, "definitions", &fingerprint)?;
    tx.commit("the vault set-up")
}

/// What the vault's hubs and views depend on: tags with their fields, sources with their
/// tags and mappings.
fn definitions_fingerprint(defs: &Definitions) -> String {
    let mut enc = super::hash::Encoder::default();
    // The DDL itself: a new version of ingestor that adds a meta table sets up again.
    enc.push(Some(meta::DDL));
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
            match column {
                crate::defs::FieldSource::Column(c) => enc.push(Some(&format!("{field}={c}"))),
                derived => enc.push(Some(&format!("{field}={derived:?}"))),
            }
        }
    }
    RecipeHasher::plain().hex(enc.bytes())
}

/// The recipe this vault was written with must be the one in use: never mix two.
fn check_recipe(conn: &Connection, hasher: &RecipeHasher) -> Result<(), VaultError> {
    let mut wanted = vec![
        ("format_version", FORMAT_VERSION.to_string()),
        ("hash_recipe", RECIPE_VERSION.to_string()),
        ("hash_algorithm", "blake3".to_string()),
        ("hash_keyed", hasher.is_keyed().to_string()),
        ("hash_key_check", hasher.key_check()),
        ("hash_normalisation", RECIPE.to_string()),
        ("key_format", "uuid".to_string()),
        ("storage_version", crate::db::STORAGE_VERSION.to_string()),
    ];
    if let Some(kdf) = hasher.kdf() {
        wanted.push(("hash_kdf", kdf.describe()));
    }
    let stored = meta::vault_values(conn)?;
    if stored.is_empty() {
        for (key, value) in &wanted {
            meta::set_vault_value(conn, key, value)?;
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
            .map(|(_, v)| v.as_str())
            // A keyed vault from before the slow derivation recorded none: it used BLAKE3's.
            .or((*key == "hash_kdf").then_some("blake3-derive-key"));
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

/// A satellite's schema fingerprint: the recipe's encoding of its ordered (column, type)
/// list, BLAKE3, in hex. Stored in `meta.satellites`; an input with the same fingerprint
/// loads into the same satellite.
pub fn schema_fingerprint(contract: &Contract) -> String {
    let mut enc = super::hash::Encoder::default();
    for c in &contract.columns {
        enc.push(Some(&c.name));
        enc.push(Some(&c.ty.to_string()));
        // A column that is part of a derived field is another schema than the same
        // column plain: the views compute from it. (Plain columns hash as they always did.)
        if let Some(part) = c.field.as_ref().and_then(|f| f.part.as_ref()) {
            enc.push(Some(&format!("part:{}", part.fingerprint_text())));
        }
    }
    RecipeHasher::plain().hex(enc.bytes())
}

/// The satellite of `source` for this schema: the existing one with the same fingerprint,
/// or a new table named by its creation time. Call inside the unit's transaction.
pub fn satellite_for(
    conn: &Connection,
    defs: &Definitions,
    source: &str,
    contract: &Contract,
    now: DateTime<Utc>,
    name: Option<&str>,
) -> Result<String, VaultError> {
    let fingerprint = schema_fingerprint(contract);
    if let Some(table) = meta::satellite_with(conn, source, &fingerprint)? {
        return Ok(table);
    }
    let taken: Vec<String> = meta::satellites(conn)?
        .into_iter()
        .map(|s| s.table)
        .collect();
    // A rebuild names the satellite as the original load did (its name is recorded in
    // the lake's manifest); otherwise it is named by its creation time.
    let prefix = format!("sat_{source}__");
    let table = match name.filter(|n| n.starts_with(&prefix) && !taken.iter().any(|t| t == n)) {
        Some(n) => n.to_string(),
        None => {
            let base = format!("sat_{source}__{}", now.format("%Y%m%dT%H%M%S"));
            let mut table = base.clone();
            let mut n = 2;
            while taken.contains(&table) {
                table = format!("{base}_{n}");
                n += 1;
            }
            table
        }
    };
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
            part: c.field.as_ref().and_then(|f| f.part.clone()),
        })
        .collect();
    let tags = defs
        .sources
        .get(source)
        .map(|s| s.tags.clone())
        .unwrap_or_default();
    meta::record_satellite(conn, source, &table, &fingerprint, &records, &tags, now)?;
    refresh_views(conn, defs)?;
    Ok(table)
}

/// Remove everything `source` brought into the vault, for a rebuild of it: its
/// satellites, the hub keys it added first, and its bookkeeping. Inside a transaction.
pub fn drop_source(conn: &Connection, defs: &Definitions, source: &str) -> Result<(), VaultError> {
    for sat in meta::satellites(conn)?
        .into_iter()
        .filter(|s| s.source == source)
    {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS vault.{}", ident(&sat.table)))
            .map_err(VaultError::db(format!("cannot drop `{}`", sat.table)))?;
    }
    for tag in defs.tags.keys() {
        conn.execute(
            &format!(
                "DELETE FROM vault.{} WHERE record_source = ?",
                ident(&format!("hub_{tag}"))
            ),
            [source],
        )
        .map_err(VaultError::db(format!("cannot clear hub `{tag}`")))?;
    }
    conn.execute_batch(&format!("DROP VIEW IF EXISTS main.{}", ident(source)))
        .map_err(VaultError::db(format!(
            "cannot drop the view of `{source}`"
        )))?;
    meta::forget_source(conn, source)?;
    refresh_views(conn, defs)
}

/// The SQL that gives tag field `field` from a satellite's columns: its column, or the
/// computation a derived field's parts call for.
fn field_expr(columns: &[ColumnRecord], field: &str) -> Option<String> {
    let parts: Vec<&ColumnRecord> = columns
        .iter()
        .filter(|c| c.field.as_deref() == Some(field))
        .collect();
    let find = |want: fn(&Part) -> bool| {
        parts
            .iter()
            .find(|c| c.part.as_ref().is_some_and(want))
            .map(|c| ident(&c.name))
    };
    if let Some(plain) = parts.iter().find(|c| c.part.is_none()) {
        return Some(ident(&plain.name));
    }
    let credit = find(|p| matches!(p, Part::Credit));
    let debit = find(|p| matches!(p, Part::Debit));
    if credit.is_some() || debit.is_some() {
        let (c, d) = (
            credit.unwrap_or_else(|| "NULL".into()),
            debit.unwrap_or_else(|| "NULL".into()),
        );
        return Some(format!(
            "(CASE WHEN {c} IS NULL AND {d} IS NULL THEN NULL ELSE coalesce({c}, 0) - abs(coalesce({d}, 0)) END)"
        ));
    }
    if let Some(col) = find(|p| matches!(p, Part::Negated)) {
        return Some(format!("(-{col})"));
    }
    let signed = parts.iter().find_map(|c| match &c.part {
        Some(Part::Signed { negative, .. }) => Some((ident(&c.name), negative)),
        _ => None,
    });
    if let (Some((col, negative)), Some(sign)) = (signed, find(|p| matches!(p, Part::Sign))) {
        // Compared as `sign_key` does (`Af` is `AF`); an empty sign is `""`.
        let list: Vec<String> = negative
            .iter()
            .map(|v| literal(&crate::defs::sign_key(v)))
            .collect();
        return Some(format!(
            "(CASE WHEN {} IN ({}) THEN -{col} ELSE {col} END)",
            crate::defs::sign_key_sql(&sign),
            list.join(", ")
        ));
    }
    None
}

/// (Re)create `main.<tag>` and `main.<source>` from the satellites the vault holds.
pub fn refresh_views(conn: &Connection, defs: &Definitions) -> Result<(), VaultError> {
    let sats = meta::satellites(conn)?;
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
                        .map(|(name, def)| match field_expr(&sat.columns, name) {
                            Some(expr) => format!("{expr} AS {}", ident(name)),
                            None => format!("NULL::{} AS {}", def.ty.sql(), ident(name)),
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
