//! `ingestor status`: what the vault holds. Reads the vault alone (and `ingestor.toml`
//! for where it is): a broken definition file does not stop it.

use crate::cli::{Cli, ReportFormat, SqlFormat};
use crate::commands::sql::{json_rows, open_vault, print_query};
use crate::db::{ident, literal};
use crate::error::{VaultError, EXIT_OK};
use crate::plan::Paths;
use crate::vault::meta;

/// Run `status`.
pub fn run(cli: &Cli, format: ReportFormat) -> anyhow::Result<i32> {
    let paths = Paths::load(cli)?;
    let conn = open_vault(cli)?;
    let human = format == ReportFormat::Human;
    if human {
        outln!("vault: {}", paths.database.display())?;
        outln!("sources:")?;
        print_query(&conn, meta::STATUS_SOURCES, SqlFormat::Table)?;
    }
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
    if !human {
        let doc = serde_json::json!({
            "vault": paths.database.display().to_string(),
            "sources": json_rows(&conn, meta::STATUS_SOURCES)?,
            "hubs": if hubs.is_empty() {
                serde_json::json!([])
            } else {
                json_rows(&conn, &hubs.join(" UNION ALL "))?
            },
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else if !hubs.is_empty() {
        outln!("hubs:")?;
        print_query(&conn, &hubs.join(" UNION ALL "), SqlFormat::Table)?;
    }
    Ok(EXIT_OK)
}
