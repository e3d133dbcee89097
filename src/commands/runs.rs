//! `ingestor runs`: recent runs and their failed inputs.

use crate::cli::{Cli, ReportFormat, SqlFormat};
use crate::commands::sql::{json_rows, open_vault, print_query};
use crate::error::EXIT_OK;
use crate::vault::meta;

/// Run `runs`.
pub fn run(cli: &Cli, limit: u32, format: ReportFormat) -> anyhow::Result<i32> {
    let conn = open_vault(cli)?;
    if format == ReportFormat::Json {
        let doc = serde_json::json!({
            "runs": json_rows(&conn, &meta::recent_runs(limit))?,
            "failed_inputs": json_rows(&conn, &meta::recent_failed_units(limit))?,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(EXIT_OK);
    }
    print_query(&conn, &meta::recent_runs(limit), SqlFormat::Table)?;
    if meta::recent_failures(&conn, limit)? > 0 {
        outln!("failed inputs:")?;
        print_query(&conn, &meta::recent_failed_units(limit), SqlFormat::Table)?;
    }
    Ok(EXIT_OK)
}
