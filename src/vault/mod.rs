//! Load stage: the Data Vault in DuckDB (hubs, satellites, meta tables, views).

pub mod ddl;
pub mod feed;
pub mod hash;
pub mod latest;
pub mod stager;
pub mod writer;

pub use hash::RecipeHasher;
pub use stager::{Staged, Stager};
pub use writer::{LoadCounts, Unit, UnitLoad};
