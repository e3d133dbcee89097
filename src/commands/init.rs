//! `ingestor init`: scaffold a project.

use std::path::Path;

use crate::cli::Cli;
use crate::error::{UsageError, EXIT_OK};

const CONFIG: &str = r#"# ingestor project settings; every key is optional and shows its default.
# database = "ingestor.duckdb"
# lake = "lake"
# tags = "tags"
# sources = "sources"
#
# [hash]
# key_secret = "vault_key"   # keyed BLAKE3; the value comes from INGESTOR_SECRET_VAULT_KEY
"#;

const TAG: &str = r#"description = "Money moving in or out of an account"

[fields]
date        = { type = "date" }
amount      = { type = "decimal" }
description = { type = "text", nullable = true }
"#;

const SOURCE: &str = r#"# A source: where inputs come from and how they map to tags.
tags = ["transactions"]
# primary_key = ["Transaction ID"]   # omit for a content key

[fields]        # tag field -> column, where names differ
date = "Date"
amount = "Amount"
description = "Description"

[reader]
type = "csv"
path = "data/example/*.csv"
"#;

const SAMPLE: &str =
    "Date,Amount,Description\n2026-01-02,-4.20,Coffee\n2026-01-03,1500.00,Salary\n";

const GITIGNORE: &str =
    "ingestor.duckdb\ningestor.duckdb.wal\ningestor.duckdb.tmp/\ningestor.duckdb.bak\ningestor.rebuilding.duckdb*\nlake/\n";

/// Run `init`.
pub fn run(cli: &Cli, dir: Option<&Path>) -> anyhow::Result<i32> {
    let root = dir
        .map(|d| cli.dir.join(d))
        .unwrap_or_else(|| cli.dir.clone());
    if root.join("ingestor.toml").exists() {
        return Err(UsageError(format!(
            "`{}` already holds an ingestor project (ingestor.toml exists)",
            root.display()
        ))
        .into());
    }
    let files = [
        ("ingestor.toml", CONFIG),
        ("tags/transactions.toml", TAG),
        ("sources/example.toml", SOURCE),
        ("data/example/2026-01.csv", SAMPLE),
        (".gitignore", GITIGNORE),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    if !cli.quiet {
        outln!("created an ingestor project in {}", root.display())?;
        outln!(
            "next: edit tags/ and sources/, then `ingestor -C {} sync`",
            root.display()
        )?;
    }
    Ok(EXIT_OK)
}
