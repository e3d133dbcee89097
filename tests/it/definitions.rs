//! Definition errors: exit 2, naming the file, the key and what was expected.

use crate::common::{Project, BANK_SOURCE};

fn assert_def_error(p: &Project, needles: &[&str]) {
    for args in [&["check"][..], &["sync"][..]] {
        p.run(args).code(2).stderr_has(needles);
    }
    assert!(
        !p.path("ingestor.duckdb").exists(),
        "a definition error writes nothing"
    );
}

#[test]
fn unknown_key_in_a_source() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        BANK_SOURCE.replace("tags = [\"tx\"]", "tags = [\"tx\"]\nprimary_kee = [\"x\"]"),
    );
    assert_def_error(&p, &["sources/bank.toml", "unknown field `primary_kee`"]);
}

#[test]
fn unknown_key_in_a_reader() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        format!("{BANK_SOURCE}delimeter = \";\"\n"),
    );
    assert_def_error(
        &p,
        &[
            "sources/bank.toml",
            "unknown field `delimeter`",
            "expected one of",
        ],
    );
}

#[test]
fn unknown_tag() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        BANK_SOURCE.replace("tags = [\"tx\"]", "tags = [\"tx\", \"money\"]"),
    );
    assert_def_error(
        &p,
        &[
            "sources/bank.toml",
            "key `tags`",
            "unknown tag `money`",
            "expected one of: tx",
        ],
    );
}

#[test]
fn bad_source_name() {
    let p = Project::tx();
    p.file("sources/Bank-Export.toml", BANK_SOURCE);
    assert_def_error(&p, &["Bank-Export.toml", "[a-z][a-z0-9_]*"]);
}

#[test]
fn unknown_field_type() {
    let p = Project::tx();
    p.file(
        "tags/tx.toml",
        crate::common::TX_TAG.replace("\"decimal\"", "\"money\""),
    );
    assert_def_error(
        &p,
        &["tags/tx.toml", "unknown type `money`", "decimal(p,s)"],
    );
}

#[test]
fn fields_entry_that_names_no_tag_field() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        BANK_SOURCE.replace(
            "memo = \"Memo\"",
            "memo = \"Memo\"\nvalue_date = \"Valuta\"",
        ),
    );
    assert_def_error(
        &p,
        &[
            "sources/bank.toml",
            "key `fields.value_date`",
            "no field of the tags",
            "amount",
        ],
    );
}

#[test]
fn source_named_like_a_tag() {
    let p = Project::tx();
    p.file("sources/tx.toml", BANK_SOURCE);
    assert_def_error(&p, &["sources/tx.toml", "has the name of a tag"]);
}

#[test]
fn unknown_key_in_project_file() {
    let p = Project::tx();
    p.file("ingestor.toml", "databse = \"x.duckdb\"\n");
    assert_def_error(&p, &["ingestor.toml", "unknown field `databse`"]);
}

#[test]
fn unknown_reader_type() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        BANK_SOURCE.replace("type = \"csv\"", "type = \"parquet\""),
    );
    assert_def_error(&p, &["sources/bank.toml", "unknown variant `parquet`"]);
}

#[test]
fn unknown_source_on_the_command_line() {
    let p = Project::tx();
    p.run(&["sync", "nosuch"])
        .code(2)
        .stderr_has(&["no source named `nosuch`", "sources/ defines: bank, card"]);
}

#[test]
fn project_file_moves_the_vault() {
    let p = Project::tx();
    p.file(
        "ingestor.toml",
        "database = \"db/my.duckdb\"\nlake = \"store\"\n",
    );
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    p.sync().code(0);
    assert!(p.path("db/my.duckdb").is_file());
    assert!(!p.path("ingestor.duckdb").exists());
    assert!(p.path("store").is_dir());
}

#[test]
fn a_vault_file_named_like_a_schema_is_refused() {
    let p = Project::tx();
    for name in ["vault.duckdb", "meta.duckdb"] {
        p.file("ingestor.toml", format!("database = \"{name}\"\n"));
        p.sync()
            .code(2)
            .stderr_has(&[name, "ambiguous", "another file name"]);
        assert!(!p.path(name).exists());
    }
}

#[test]
fn duckdb_memory_limit_is_passed_to_duckdb() {
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    p.file("ingestor.toml", "[duckdb]\nmemory_limit = \"lots\"\n");
    // Issue 12: a setting DuckDB refuses is a definition error (exit 2), not a vault one.
    p.sync().code(2).stderr_has(&[
        "ingestor.toml",
        "`[duckdb] memory_limit = \"lots\"` is not a size",
    ]);
    p.file("ingestor.toml", "[duckdb]\nmemory_limit = \"64MB\"\n");
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 1);
}

/// Issue 12: a date format chrono does not know is a definition error, not a rejected file.
#[test]
fn a_date_format_that_is_no_format_is_a_definition_error() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        format!("{}date_format = \"%d.%m.%Q\"\n", crate::common::BANK_SOURCE),
    );
    p.run(&["check"]).code(2).stderr_has(&[
        "sources/bank.toml",
        "date_format",
        "not a chrono format",
    ]);
}

/// Issue 12: an empty vault key keys nothing.
#[test]
fn an_empty_vault_key_is_refused() {
    let p = Project::tx();
    p.file("ingestor.toml", "[hash]\nkey_secret = \"vault_key\"\n");
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    // An empty secret is a missing one (exit 5).
    p.run_env(&["sync"], &[("INGESTOR_SECRET_VAULT_KEY", "  ")])
        .code(5)
        .stderr_has(&["vault_key", "INGESTOR_SECRET_VAULT_KEY"]);
    assert!(!p.path("ingestor.duckdb").exists());
}

/// Issue 12: a value near DuckDB's memory limit made DuckDB throw inside the load, and the
/// process aborted. The largest value follows the memory limit; asking for more than it
/// holds is a definition error.
#[test]
fn the_largest_value_follows_the_memory_limit() {
    let p = Project::tx();
    p.file("ingestor.toml", "[duckdb]\nmemory_limit = \"16MB\"\n");
    let big = format!(
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,{}\n",
        "x".repeat(4_000_000)
    );
    p.file("in/bank/a.csv", big);
    p.sync().code(3).stderr_has(&[
        "in/bank/a.csv",
        "line 2",
        "column `Memo`",
        "more than the limit of 3200000",
    ]);
    p.file(
        "sources/bank.toml",
        format!(
            "{}max_value_bytes = 100000000\n",
            crate::common::BANK_SOURCE
        ),
    );
    p.sync().code(2).stderr_has(&[
        "sources/bank.toml",
        "reader.max_value_bytes",
        "memory_limit",
    ]);
}
