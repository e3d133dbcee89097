//! `ingestor runs`: recent runs and their failed inputs.

use crate::cli::{Cli, SqlFormat};
use crate::commands::sql::{open_vault, print_query};
use crate::error::EXIT_OK;

/// Run `runs`.
pub fn run(cli: &Cli, limit: u32) -> anyhow::Result<i32> {
    let conn = open_vault(cli)?;
    print_query(
        &conn,
        &format!(
            "SELECT run_id, command, strftime(started_at::TIMESTAMP, '%Y-%m-%d %H:%M:%S') AS started, \
                    round(epoch(finished_at::TIMESTAMP) - epoch(started_at::TIMESTAMP), 2) AS seconds, status, exit_code, \
                    units_loaded AS loaded, units_skipped AS skipped, units_failed AS failed \
             FROM meta.runs ORDER BY run_id DESC LIMIT {limit}"
        ),
        SqlFormat::Table,
    )?;
    let failures: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM meta.loads WHERE status <> 'loaded' AND run_id IN \
             (SELECT run_id FROM meta.runs ORDER BY run_id DESC LIMIT {limit})"
        ),
        [],
        |r| r.get(0),
    )?;
    if failures > 0 {
        println!("failed inputs:");
        print_query(
            &conn,
            &format!(
                "SELECT run_id, source, path, status, error FROM meta.loads \
                 WHERE status <> 'loaded' AND run_id IN \
                 (SELECT run_id FROM meta.runs ORDER BY run_id DESC LIMIT {limit}) \
                 ORDER BY run_id DESC, source, path"
            ),
            SqlFormat::Table,
        )?;
    }
    Ok(EXIT_OK)
}
