//! `ingestor status`: what the vault holds. Reads the vault alone (and `ingestor.toml`
//! for where it is): a broken definition file does not stop it.

use crate::cli::{Cli, SqlFormat};
use crate::commands::sql::{open_vault, print_query};
use crate::db::{ident, literal};
use crate::error::{VaultError, EXIT_OK};
use crate::plan::Paths;
use crate::vault::meta;

/// Run `status`.
pub fn run(cli: &Cli) -> anyhow::Result<i32> {
    let paths = Paths::load(cli)?;
    let conn = open_vault(cli)?;
    outln!("vault: {}", paths.database.display())?;
    outln!("sources:")?;
    print_query(&conn, meta::STATUS_SOURCES, SqlFormat::Table)?;
    // The hubs the vault has, whatever the tags/ folder says today.
    let mut stmt = conn
        .prepare(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'vault' \
             AND table_name LIKE 'hub\\_%' ESCAPE '\\' ORDER BY table_name",
        )
        .map_err(VaultError::db("cannot list the hubs"))?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(VaultError::db("cannot list the hubs"))?;
    let hubs: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT {} AS tag, count(*) AS hub_keys FROM vault.{}",
                literal(t.trim_start_matches("hub_")),
                ident(t)
            )
        })
        .collect();
    if !hubs.is_empty() {
        outln!("hubs:")?;
        print_query(&conn, &hubs.join(" UNION ALL "), SqlFormat::Table)?;
    }
    Ok(EXIT_OK)
}
