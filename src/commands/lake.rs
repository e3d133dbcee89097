//! `ingestor lake verify`: every lake object re-hashed against its name and the manifest.

use crate::cli::{Cli, LakeCommand};
use crate::error::{VaultError, EXIT_OK};
use crate::lake::Verification;
use crate::plan::Paths;

/// Run `lake …`.
pub fn run(cli: &Cli, command: &LakeCommand) -> anyhow::Result<i32> {
    match command {
        LakeCommand::Verify => verify(cli),
    }
}

fn verify(cli: &Cli) -> anyhow::Result<i32> {
    let project = Paths::load(cli)?;
    let lake = &project.lake;
    let found = lake.verify(None)?;
    report(&found, &project.display(lake.root()))?;
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
