//! `ingestor status`: what the vault holds.

use crate::cli::{Cli, SqlFormat};
use crate::commands::sql::{open_vault, print_query};
use crate::error::EXIT_OK;
use crate::plan::Project;
use crate::vault::ddl::ident;

/// Run `status`.
pub fn run(cli: &Cli) -> anyhow::Result<i32> {
    let project = Project::load(cli)?;
    let conn = open_vault(cli)?;
    println!("vault: {}", project.database.display());
    println!("sources:");
    print_query(
        &conn,
        "SELECT s.source, \
                count(DISTINCT l.file_hash) FILTER (WHERE l.status = 'loaded') AS files, \
                count(*) FILTER (WHERE l.status IN ('failed', 'rejected')) AS failed_loads, \
                (SELECT count(*) FROM meta.satellites m WHERE m.source = s.source) AS satellites, \
                (SELECT max(table_name) FROM meta.satellites m WHERE m.source = s.source) AS current_satellite, \
                coalesce(sum(l.new_rows + l.changed_rows), 0) AS satellite_rows, \
                strftime(max(l.loaded_at)::TIMESTAMP, '%Y-%m-%d %H:%M:%S') AS last_load \
         FROM (SELECT DISTINCT source FROM meta.loads UNION SELECT DISTINCT source FROM meta.satellites) s \
         LEFT JOIN meta.loads l USING (source) GROUP BY s.source ORDER BY s.source",
        SqlFormat::Table,
    )?;
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
        println!("hubs:");
        print_query(&conn, &hubs.join(" UNION ALL "), SqlFormat::Table)?;
    }
    Ok(EXIT_OK)
}
