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
    // This process holds the vault's lock now: DuckDB's spill folder, if one is left,
    // is from a process that was killed.
    crate::db::remove_spill(database)?;
    crate::db::configure(&conn, &defs.project.duckdb)?;
    feed::register(&conn).map_err(VaultError::db("cannot configure DuckDB"))?;
    ddl::ensure(&conn, defs, hasher)?;
    Ok(conn)
}
