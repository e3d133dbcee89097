//! `ingestor rebuild`: replay the vault from the lake alone, and swap it in on success.
//!
//! The replay goes into a new file beside the vault, through the same pipeline as `sync`,
//! unit by unit in the order the lake's manifest lists the loads, each with the `load_ts`
//! and satellite name it had. Only when every unit loaded is the new file renamed over the
//! vault; until then the vault stays as it was, and a failed rebuild removes the new file.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::cli::{Cli, RebuildArgs};
use crate::commands::sync::{print_errors, print_human, progress_bar};
use crate::db::{self, Transaction};
use crate::error::{UsageError, VaultError, EXIT_OK};
use crate::lake::LoadEntry;
use crate::pipeline::{self, Pipeline, SourceReport, Status};
use crate::plan::Project;
use crate::secrets::Secrets;
use crate::vault::{ddl, meta};

/// Run `rebuild`.
pub fn run(cli: &Cli, args: &RebuildArgs) -> anyhow::Result<i32> {
    let project = Project::load(cli)?;
    let selected: HashSet<String> = project
        .defs
        .select(&args.sources)?
        .into_iter()
        .map(|s| s.id.clone())
        .collect();
    let partial = !args.sources.is_empty();
    let hasher = project.hasher()?;
    let vault = &project.database;
    db::check_path(vault)?;
    let name = project.display(vault);
    // The old vault, if any, tells the manifest of loads a crash kept out of it, and is
    // checkpointed so that no write-ahead log of it is left to meet the new file. Its
    // connection stays open until the swap: DuckDB's lock on the file keeps a sync from
    // committing loads the new vault would not have.
    let old = match db::open_existing(vault)? {
        Some(old) => {
            // Someone else's database under the vault's name is not replaced.
            crate::vault::refuse_foreign(&old, vault)?;
            if meta::vault_value(&old, "format_version").is_some() {
                Pipeline::reconcile_manifest(&old, &project.lake, &name)?;
            }
            old.execute_batch("CHECKPOINT")
                .map_err(VaultError::db("cannot checkpoint the vault"))?;
            Some(old)
        }
        None if partial => {
            return Err(UsageError(format!(
                "no vault at `{}` to keep the other sources of; run `ingestor rebuild` \
                 without sources to replay every source",
                vault.display()
            ))
            .into())
        }
        None => None,
    };
    let manifest = project.lake.manifest()?;
    let mut undefined = BTreeMap::new();
    let mut loads: Vec<&LoadEntry> = manifest
        .loads()
        .filter(|l| l.is_for(&name))
        .filter(|l| {
            let defined = project.defs.sources.contains_key(&l.source);
            if !defined {
                *undefined.entry(l.source.as_str()).or_insert(0) += 1;
            }
            defined && selected.contains(&l.source)
        })
        .collect();
    // A full rebuild replaces the vault: the loads of a source sources/ no longer defines
    // would be lost. Rebuilding named sources keeps every other source as it is.
    if !partial && !undefined.is_empty() {
        let list: Vec<String> = undefined
            .iter()
            .map(|(s, n)| format!("`{s}` ({n} loads)"))
            .collect();
        return Err(UsageError(format!(
            "the lake holds loads of sources that sources/ no longer defines: {}; a rebuild \
             would drop them from the vault. Restore their definitions, or rebuild only the \
             sources you name (`ingestor rebuild SOURCE..`)",
            list.join(", ")
        ))
        .into());
    }
    // In the order the loads committed (a line the vault listed again after a crash may
    // come late in the manifest), each once.
    loads.sort_by_key(|l| l.load_ts);
    loads.dedup_by(|a, b| a.source == b.source && a.hash == b.hash && a.load_ts == b.load_ts);
    // A damaged lake is refused before anything is touched.
    let needed: HashSet<String> = loads.iter().map(|l| l.hash.clone()).collect();
    let found = project.lake.verify(Some(&needed))?;
    if !found.ok() {
        crate::commands::lake::report(&found, &project.display(project.lake.root()))?;
        return Err(crate::commands::lake::damaged(&found).into());
    }
    let fresh = fresh_path(vault);
    remove_db(&fresh)?;
    let result = replay(cli, &project, &hasher, &fresh, &loads, partial, &selected);
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = remove_db(&fresh);
            return Err(e);
        }
    };
    let code = reports.iter().map(|r| r.exit_code).max().unwrap_or(EXIT_OK);
    if !cli.quiet {
        print_human(&reports)?;
    }
    if code != EXIT_OK {
        remove_db(&fresh)?;
        eprintln!(
            "error: the rebuild failed; `{}` is as it was",
            vault.display()
        );
        return Ok(code);
    }
    // The old vault's lock is let go just before the rename.
    drop(old);
    swap(&fresh, vault)?;
    let units = reports.iter().flat_map(|r| &r.units).count();
    let rows: u64 = reports
        .iter()
        .flat_map(|r| &r.units)
        .filter_map(|u| u.counts.as_ref())
        .map(|c| c.rows_read)
        .sum();
    if !cli.quiet {
        outln!(
            "rebuilt `{}` from the lake: {units} units, {rows} rows replayed",
            project.display(vault)
        )?;
    }
    Ok(EXIT_OK)
}

/// Replay `loads` into a new vault at `fresh`: a copy of the vault without the selected
/// sources (`partial`), or an empty one. Stops at the first unit that fails.
fn replay(
    cli: &Cli,
    project: &Project,
    hasher: &crate::vault::RecipeHasher,
    fresh: &Path,
    loads: &[&LoadEntry],
    partial: bool,
    selected: &HashSet<String>,
) -> anyhow::Result<Vec<SourceReport>> {
    if partial {
        std::fs::copy(&project.database, fresh).map_err(|source| VaultError::Io {
            context: format!("cannot copy the vault to `{}`", fresh.display()),
            source,
        })?;
    }
    let conn = crate::vault::open_for_writing(fresh, &project.defs, hasher)?;
    if partial {
        let tx = Transaction::begin(&conn, "clearing the sources to rebuild")?;
        for source in selected {
            ddl::drop_source(&conn, &project.defs, source)?;
        }
        tx.commit("clearing the sources to rebuild")?;
    }
    let run_id = meta::start_run(&conn, "rebuild")?;
    let progress = progress_bar(cli.quiet);
    let mut pipeline = Pipeline::new(
        project,
        Some(&conn),
        false,
        hasher,
        &Secrets,
        run_id,
        &progress,
    )
    .replaying();
    let mut reports: BTreeMap<&str, SourceReport> = BTreeMap::new();
    for (i, load) in loads.iter().enumerate() {
        let source = &project.defs.sources[&load.source];
        progress.set_prefix(format!("unit {}/{} ", i + 1, loads.len()));
        let unit = pipeline.replay(source, load);
        let failed = !matches!(unit.status, Status::Loaded);
        let report = reports.entry(&load.source).or_insert_with(|| SourceReport {
            source: load.source.clone(),
            exit_code: EXIT_OK,
            error: None,
            units: Vec::new(),
        });
        report.exit_code = report.exit_code.max(unit.exit_code);
        report.units.push(unit);
        if failed {
            progress.suspend(|| print_errors(report));
            break;
        }
    }
    progress.finish_and_clear();
    let reports: Vec<SourceReport> = reports.into_values().collect();
    let code = reports.iter().map(|r| r.exit_code).max().unwrap_or(EXIT_OK);
    meta::finish_run(&conn, run_id, code, pipeline::tally(&reports))?;
    // Every load of the new vault came from the manifest.
    meta::set_vault_value(&conn, meta::LISTED_RUN, &run_id.to_string())?;
    conn.execute_batch("CHECKPOINT")
        .map_err(VaultError::db("cannot checkpoint the rebuilt vault"))?;
    drop(conn);
    Ok(reports)
}

/// The new vault's path: beside the vault, so that renaming it over the vault is atomic.
fn fresh_path(vault: &Path) -> PathBuf {
    let stem = vault
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("ingestor");
    vault.with_file_name(format!("{stem}.rebuilding.duckdb"))
}

/// Remove a DuckDB file and its write-ahead log, if they exist.
fn remove_db(path: &Path) -> Result<(), VaultError> {
    for p in [path.to_path_buf(), wal_of(path)] {
        crate::lake::remove_if_present(&p)?;
    }
    Ok(())
}

fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// Put `fresh` in the place of `vault`. The old vault is kept as `<vault>.bak` (a hard
/// link, where the file system has them) until the rename is done, so that at every
/// moment one whole vault is there.
fn swap(fresh: &Path, vault: &Path) -> Result<(), VaultError> {
    let io = |what: String| {
        move |source| VaultError::Io {
            context: what,
            source,
        }
    };
    if wal_of(vault).exists() {
        return Err(VaultError::Refused(format!(
            "`{}` has a write-ahead log (another process wrote to it during the rebuild); \
             the rebuilt vault was not swapped in: run `ingestor rebuild` again",
            vault.display()
        )));
    }
    if wal_of(fresh).exists() {
        return Err(VaultError::Refused(format!(
            "the rebuilt vault `{}` still has a write-ahead log; it was not swapped in",
            fresh.display()
        )));
    }
    let mut backup = vault.as_os_str().to_owned();
    backup.push(".bak");
    let backup = PathBuf::from(backup);
    let kept = vault.exists();
    if kept {
        let _ = std::fs::remove_file(&backup);
        std::fs::hard_link(vault, &backup)
            .or_else(|_| std::fs::copy(vault, &backup).map(|_| ()))
            .map_err(io(format!(
                "cannot keep a backup at `{}`",
                backup.display()
            )))?;
    }
    std::fs::rename(fresh, vault).map_err(io(format!(
        "cannot move `{}` to `{}`",
        fresh.display(),
        vault.display()
    )))?;
    if let Some(dir) = vault.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    if kept {
        std::fs::remove_file(&backup).map_err(io(format!(
            "cannot remove the backup `{}`",
            backup.display()
        )))?;
    }
    Ok(())
}
