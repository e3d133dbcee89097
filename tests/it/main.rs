//! Integration tests: the real `ingestor` binary on real DuckDB files in temp projects.

mod api;
mod check;
mod cli;
mod common;
mod compat;
mod conformance;
mod definitions;
mod examples;
mod excel;
mod exit_codes;
mod hostile;
mod http;
mod json;
mod keyring;
mod kill;
mod pdf;
mod rebuild;
mod sync;
mod vault;
