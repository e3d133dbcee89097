//! `ingestor runs`: recent runs and their failed inputs.

use crate::cli::{Cli, SqlFormat};
use crate::commands::sql::{open_vault, print_query};
use crate::error::EXIT_OK;
use crate::vault::meta;

/// Run `runs`.
pub fn run(cli: &Cli, limit: u32) -> anyhow::Result<i32> {
    let conn = open_vault(cli)?;
    print_query(&conn, &meta::recent_runs(limit), SqlFormat::Table)?;
    if meta::recent_failures(&conn, limit)? > 0 {
        outln!("failed inputs:")?;
        print_query(&conn, &meta::recent_failed_units(limit), SqlFormat::Table)?;
    }
    Ok(EXIT_OK)
}
