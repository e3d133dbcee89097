//! `ingestor schema`: the satellite versions of sources, and what changed between them.

use crate::cli::{Cli, ReportFormat};
use crate::commands::sql::open_vault;
use crate::error::EXIT_OK;
use crate::plan::Project;
use crate::vault::meta::{self, ColumnRecord};

/// Run `schema`.
pub fn run(
    cli: &Cli,
    source: Option<&str>,
    diff: bool,
    format: ReportFormat,
) -> anyhow::Result<i32> {
    let project = Project::load(cli)?;
    if let Some(s) = source {
        if !project.defs.sources.contains_key(s) {
            return Err(project.defs.unknown_source(s).into());
        }
    }
    let conn = open_vault(cli)?;
    let sats = meta::satellites(&conn)?;
    let mut sources: Vec<&str> = sats.iter().map(|s| s.source.as_str()).collect();
    sources.dedup();
    if format == ReportFormat::Json {
        let doc: Vec<serde_json::Value> = sources
            .iter()
            .filter(|s| source.is_none_or(|want| want == **s))
            .map(|src| {
                let versions: Vec<&meta::SatelliteRecord> =
                    sats.iter().filter(|s| s.source == *src).collect();
                let satellites: Vec<serde_json::Value> = versions
                    .iter()
                    .enumerate()
                    .map(|(i, sat)| {
                        let changes = i
                            .checked_sub(1)
                            .map(|p| changes(&versions[p].columns, &sat.columns))
                            .unwrap_or_default();
                        serde_json::json!({
                            "table": format!("vault.{}", sat.table),
                            "created_at": sat.created_at,
                            "columns": sat.columns,
                            "changes": changes,
                        })
                    })
                    .collect();
                serde_json::json!({ "source": src, "satellites": satellites })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(EXIT_OK);
    }
    for src in sources
        .into_iter()
        .filter(|s| source.is_none_or(|want| want == *s))
    {
        outln!("source {src}")?;
        let versions: Vec<_> = sats.iter().filter(|s| s.source == src).collect();
        for (i, sat) in versions.iter().enumerate() {
            outln!("  vault.{}  (created {})", sat.table, sat.created_at)?;
            if diff {
                match i.checked_sub(1).map(|p| versions[p]) {
                    None => outln!("    first version, {} columns", sat.columns.len())?,
                    Some(prev) => {
                        for line in changes(&prev.columns, &sat.columns) {
                            outln!("    {line}")?;
                        }
                    }
                }
            } else {
                for c in &sat.columns {
                    let field = c
                        .field
                        .as_deref()
                        .map(|f| format!("  (tag field `{f}`)"))
                        .unwrap_or_default();
                    outln!("    {:<28} {}{field}", c.name, c.ty)?;
                }
            }
        }
    }
    Ok(EXIT_OK)
}

/// Columns added, dropped and retyped from one version to the next.
pub fn changes(old: &[ColumnRecord], new: &[ColumnRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for c in new {
        match old.iter().find(|o| o.name == c.name) {
            None => out.push(format!("+ {} {}", c.name, c.ty)),
            Some(o) if o.ty != c.ty => out.push(format!("~ {} {} -> {}", c.name, o.ty, c.ty)),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|c| c.name == o.name) {
            out.push(format!("- {} {}", o.name, o.ty));
        }
    }
    let old_names: Vec<&str> = old
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| new.iter().any(|c| &c.name == n))
        .collect();
    let new_names: Vec<&str> = new
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| old.iter().any(|c| &c.name == n))
        .collect();
    if out.is_empty() && old_names != new_names {
        out.push(format!(
            "column order {} -> {}",
            old_names.join(", "),
            new_names.join(", ")
        ));
    }
    out
}
