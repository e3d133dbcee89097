//! `ingestor lake verify`: every lake object re-hashed against its name and the manifest.

use std::collections::HashSet;

use crate::cli::{Cli, LakeCommand};
use crate::error::{VaultError, EXIT_OK};
use crate::lake::Verification;
use crate::plan::Paths;

/// Run `lake …`.
pub fn run(cli: &Cli, command: &LakeCommand) -> anyhow::Result<i32> {
    match command {
        LakeCommand::Verify => verify(cli),
        LakeCommand::Gc { dry_run } => gc(cli, *dry_run),
    }
}

/// Every object a committed load refers to: the loads the manifest lists (of every vault
/// sharing the lake) and the vault's own (a load committed but not yet listed), and the
/// pages an API unit names.
fn referenced(
    lake: &crate::lake::Lake,
    conn: Option<&duckdb::Connection>,
) -> anyhow::Result<HashSet<String>> {
    let mut keep: HashSet<String> = lake.manifest()?.loads().map(|l| l.hash.clone()).collect();
    if let Some(conn) = conn {
        if crate::vault::meta::vault_value(conn, "format_version").is_some() {
            keep.extend(crate::vault::meta::loaded_hashes(conn)?);
        }
    }
    let units: Vec<String> = keep.iter().cloned().collect();
    for hash in units {
        let path = lake.path_of(&hash);
        // A unit document is told by its first bytes; input files are not read whole.
        // One that cannot be read stops the collection: its pages must not go.
        let mut head = [0u8; 64];
        let n = match std::fs::File::open(&path) {
            Ok(mut f) => std::io::Read::read(&mut f, &mut head).unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(VaultError::Io {
                    context: format!("lake: cannot read `{}`", path.display()),
                    source,
                }
                .into())
            }
        };
        if !head[..n].windows(17).any(|w| w == b"ingestor_api_unit") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| VaultError::Io {
            context: format!("lake: cannot read `{}`", path.display()),
            source,
        })?;
        let pages = crate::readers::api::unit_objects(&bytes).ok_or_else(|| {
            VaultError::Refused(format!(
                "lake: `{}` looks like an API sync's page list but cannot be read as one; \
                 nothing was removed",
                path.display()
            ))
        })?;
        keep.extend(pages);
    }
    Ok(keep)
}

/// `lake gc`: remove what no committed load refers to.
fn gc(cli: &Cli, dry_run: bool) -> anyhow::Result<i32> {
    let project = Paths::load(cli)?;
    // Held until the end: no sync of this vault stores objects meanwhile.
    let conn = crate::db::open_existing(&project.database)?;
    if let Some(c) = &conn {
        crate::vault::refuse_foreign(c, &project.database)?;
    }
    let lake = &project.lake;
    let keep = referenced(lake, conn.as_ref())?;
    let found = lake.unreferenced(&keep)?;
    let bytes: u64 = found.iter().map(|(_, n, _)| n).sum();
    let shown = project.display(lake.root());
    for (hash, size, owners) in &found {
        let from = owners
            .iter()
            .map(|(s, n)| format!("source `{s}` `{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        outln!(
            "{} {shown}/{}/{hash} ({size} bytes{}{})",
            if dry_run { "would remove" } else { "removed" },
            hash.get(..2).unwrap_or_default(),
            if from.is_empty() { "" } else { ", " },
            from
        )?;
    }
    if !dry_run {
        let hashes: Vec<String> = found.iter().map(|(h, _, _)| h.clone()).collect();
        lake.remove_objects(&hashes)?;
        lake.remove_stale_temp_files();
    }
    outln!(
        "{} object(s), {bytes} bytes, that no load refers to{}",
        found.len(),
        if dry_run {
            ": nothing removed (--dry-run)"
        } else {
            ": removed"
        }
    )?;
    Ok(EXIT_OK)
}

fn verify(cli: &Cli) -> anyhow::Result<i32> {
    let project = Paths::load(cli)?;
    let lake = &project.lake;
    let found = lake.verify(None)?;
    report(&found, &project.display(lake.root()))?;
    // Objects no load refers to are not damage: a refused file's copy, a failed API
    // sync's bodies. Said, so that `lake gc` is known.
    let conn = crate::db::open_read_only(&project.database).ok().flatten();
    let unused = lake.unreferenced(&referenced(lake, conn.as_ref())?)?;
    if !unused.is_empty() {
        let bytes: u64 = unused.iter().map(|(_, n, _)| n).sum();
        outln!(
            "{} object(s), {bytes} bytes, that no load refers to: `ingestor lake gc` removes them",
            unused.len()
        )?;
    }
    if !found.ok() {
        return Err(damaged(&found).into());
    }
    Ok(EXIT_OK)
}

/// Print what `verify` found: a summary on stdout, damage and unlisted objects on stderr.
pub fn report(found: &Verification, lake: &str) -> std::io::Result<()> {
    for d in &found.damaged {
        let owners: Vec<String> = d
            .owners
            .iter()
            .map(|(source, name)| format!("source `{source}` `{name}`"))
            .collect();
        let owners = if owners.is_empty() {
            "listed by no source".to_string()
        } else {
            owners.join(", ")
        };
        eprintln!(
            "damaged: {lake}/{}/{}: {} ({owners})",
            d.hash.get(..2).unwrap_or_default(),
            d.hash,
            d.problem,
        );
    }
    for (line, error) in &found.manifest_damaged {
        eprintln!(
            "damaged: {lake}/{} line {line}: {error}",
            crate::lake::MANIFEST
        );
    }
    for hash in &found.unlisted {
        eprintln!(
            "note: {lake}/{}/{hash} is in no line of the manifest (stored before the lake \
             had one, or by a sync that stopped before listing it); its bytes were checked",
            hash.get(..2).unwrap_or_default(),
        );
    }
    outln!(
        "{} objects, {} bytes checked: {}",
        found.objects,
        found.bytes,
        if found.ok() {
            "all hold".to_string()
        } else {
            format!(
                "{} damaged or missing",
                found.damaged.len() + found.manifest_damaged.len()
            )
        }
    )?;
    Ok(())
}

/// The error a damaged lake is.
pub fn damaged(found: &Verification) -> VaultError {
    VaultError::Refused(format!(
        "the lake is damaged: {} object(s) missing or not what their name says{}",
        found.damaged.len(),
        if found.manifest_damaged.is_empty() {
            String::new()
        } else {
            format!(
                ", {} manifest line(s) unreadable",
                found.manifest_damaged.len()
            )
        }
    ))
}
