//! ingestor: a Data Vault ELT loader into embedded DuckDB.
//!
//! Dependencies run one way: `commands` → `pipeline` → `vault` and `readers` → `defs` →
//! `error`, with `db`, `lake`, `canonical` and `secrets` as leaves. Data flows the same
//! way: `readers` → `validate` → `vault` → `db`. Only `commands` and `run` print or
//! decide exit codes.

pub mod canonical;
pub mod cli;
pub mod commands;
pub mod db;
pub mod defs;
pub mod error;
pub mod interrupt;
pub mod json;
pub mod lake;
pub mod pdf;
pub mod pipeline;
pub mod plan;
pub mod readers;
pub mod run;
pub mod secrets;
pub mod timings;
pub mod validate;
pub mod vault;
