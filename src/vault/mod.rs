//! Load stage: the Data Vault in DuckDB (hubs, satellites, meta tables, views).

pub mod ddl;
pub mod feed;
pub mod hash;
pub mod latest;
pub mod meta;
pub mod stager;
pub mod writer;

use duckdb::Connection;

use crate::defs::Definitions;
use crate::error::VaultError;

pub use hash::RecipeHasher;
pub use meta::{LoadCounts, Unit, UnitStatus};
pub use stager::{Staged, Stager};
pub use writer::UnitLoad;

/// Open (creating if needed) the project's vault for loading: DuckDB configured, the
/// feed registered, the meta tables, hubs and views in place, the recipe checked.
pub fn open_for_writing(
    database: &std::path::Path,
    defs: &Definitions,
    hasher: &RecipeHasher,
) -> anyhow::Result<Connection> {
    let conn = crate::db::open(database)?;
    refuse_foreign(&conn, database)?;
    check_storage_version(&conn, database)?;
    // This process holds the vault's lock now: DuckDB's spill folder, if one is left,
    // is from a process that was killed.
    crate::db::remove_spill(database)?;
    crate::db::configure(&conn, &defs.project.duckdb)?;
    feed::register(&conn).map_err(VaultError::db("cannot configure DuckDB"))?;
    ddl::ensure(&conn, defs, hasher)?;
    Ok(conn)
}

/// A DuckDB file is a vault when `meta.vault` records the recipe; an empty one becomes a
/// vault. Anyone else's database (tables, and no recipe) is refused before anything is
/// written into it.
pub fn refuse_foreign(conn: &Connection, database: &std::path::Path) -> Result<(), VaultError> {
    if meta::vault_value(conn, "hash_recipe").is_some() {
        return Ok(());
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE NOT temporary",
            [],
            |r| r.get(0),
        )
        .map_err(VaultError::db("cannot read the database's tables"))?;
    let views: i64 = conn
        .query_row(
            "SELECT count(*) FROM duckdb_views() WHERE NOT internal AND NOT temporary",
            [],
            |r| r.get(0),
        )
        .map_err(VaultError::db("cannot read the database's views"))?;
    if tables + views > 0 {
        return Err(VaultError::Refused(format!(
            "`{}` is a DuckDB database but not an ingestor vault (it has {tables} tables and \
             {views} views, and no meta.vault); it was left as it was. Point `database` in \
             ingestor.toml (or --db) at another file",
            database.display()
        )));
    }
    Ok(())
}

/// Whether a storage version tag (`v1.5.0+`, `v1.0.0+`, `v2.0.0+`) is one DuckDB 1.5
/// reads: 1.5 or older.
fn readable_by_1_5(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major == 0 || (major == 1 && minor <= 5)
}

/// The vault must stay readable by DuckDB 1.5 clients: its file's storage version is
/// checked, not only recorded. A file in a newer format (an empty DuckDB file another
/// tool made, say) is refused before anything is written.
fn check_storage_version(conn: &Connection, database: &std::path::Path) -> Result<(), VaultError> {
    let version: Option<String> = conn
        .query_row(
            "SELECT tags['storage_version'] FROM duckdb_databases() \
             WHERE database_name = current_database()",
            [],
            |r| r.get(0),
        )
        .map_err(VaultError::db("cannot read the vault's storage version"))?;
    let wanted = crate::db::STORAGE_VERSION;
    match version {
        Some(v) if !readable_by_1_5(&v) => Err(VaultError::Refused(format!(
            "`{}` is stored in DuckDB's format {v}, which DuckDB {} clients cannot open; \
             ingestor writes vaults in {wanted}. `ingestor rebuild` makes the vault again in \
             {wanted} from the lake and puts it in this file's place",
            database.display(),
            wanted.trim_start_matches('v')
        ))),
        _ => Ok(()),
    }
}
