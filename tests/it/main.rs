//! Integration tests: the real `ingestor` binary on real DuckDB files in temp projects.

mod check;
mod cli;
mod common;
mod compat;
mod conformance;
mod definitions;
mod examples;
mod excel;
mod exit_codes;
mod rebuild;
mod sync;
mod vault;
