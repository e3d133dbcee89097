//! `ingestor status`: what the vault holds.

use crate::cli::{Cli, SqlFormat};
use crate::commands::sql::{open_vault, print_query};
use crate::db::ident;
use crate::error::EXIT_OK;
use crate::plan::Project;
use crate::vault::meta;

/// Run `status`.
pub fn run(cli: &Cli) -> anyhow::Result<i32> {
    let project = Project::load(cli)?;
    let conn = open_vault(cli)?;
    outln!("vault: {}", project.database.display())?;
    outln!("sources:")?;
    print_query(&conn, meta::STATUS_SOURCES, SqlFormat::Table)?;
    let hubs: Vec<String> = project
        .defs
        .tags
        .keys()
        .map(|t| {
            format!(
                "SELECT '{t}' AS tag, count(*) AS hub_keys FROM vault.{}",
                ident(&format!("hub_{t}"))
            )
        })
        .collect();
    if !hubs.is_empty() {
        outln!("hubs:")?;
        print_query(&conn, &hubs.join(" UNION ALL "), SqlFormat::Table)?;
    }
    Ok(EXIT_OK)
}
