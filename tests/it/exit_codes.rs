//! Every documented exit code, pinned.

use crate::common::Project;

const ROW: &str = "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n";

#[test]
fn code_0_ok() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    p.sync().code(0);
}

#[test]
fn code_1_contract_broken() {
    let p = Project::tx();
    p.file("in/bank/a.csv", "id,Date,Memo\nT1,2026-01-01,x\n");
    p.sync().code(1);
}

#[test]
fn code_2_usage() {
    let p = Project::tx();
    p.run(&["sync", "--no-such-flag"]).code(2);
    p.run(&["sql", "SELECT 1"])
        .code(2)
        .stderr_has(&["no vault"]);
    p.file("in/bank/a.csv", ROW);
    p.sync().code(0);
    p.run(&["sql", "SELEC 1"])
        .code(2)
        .stderr_has(&["SQL error"]);
}

#[test]
fn code_3_source_unreadable() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        crate::common::BANK_SOURCE.replace("in/bank/*.csv", "in/bank/missing.csv"),
    );
    p.sync()
        .code(3)
        .stderr_has(&["no input matches `in/bank/missing.csv`"]);
}

#[test]
fn code_4_vault_unwritable() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    p.file("blocker", "a file where a folder should be");
    let db = p.path("blocker/ingestor.duckdb");
    p.run(&["--db", db.to_str().expect("utf-8"), "sync"])
        .code(4);
}

#[test]
fn code_4_lake_unwritable_and_nothing_loaded() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    p.file("lake", "a file where the lake folder should be");
    p.sync().code(4).stderr_has(&["lake"]);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 0);
}

#[test]
fn code_5_secret_missing_then_keyed_vault_refuses_plain_loads() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    p.file("ingestor.toml", "[hash]\nkey_secret = \"vault_key\"\n");
    p.sync()
        .code(5)
        .stderr_has(&["secret `vault_key`", "INGESTOR_SECRET_VAULT_KEY"]);
    assert!(!p.path("ingestor.duckdb").exists());
    let out = p
        .run_env(&["sync"], &[("INGESTOR_SECRET_VAULT_KEY", "s3cret value")])
        .code(0);
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));
    // Keyed: the stored key is not the plain BLAKE3 of the key parts.
    let plain = {
        let mut enc = Vec::new();
        for v in ["bank", "T1"] {
            enc.push(1u8);
            enc.extend((v.len() as u32).to_le_bytes());
            enc.extend(v.as_bytes());
        }
        blake3::hash(&enc).to_hex()[..32].to_string()
    };
    let stored = p.texts("SELECT replace(hk::VARCHAR, '-', '') FROM vault.hub_tx");
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], plain);
    // Another key, or none, would mix recipes: refused, nothing written.
    p.file(
        "in/bank/b.csv",
        "id,Date,Amount,Memo\nT2,2026-01-02,1.00,x\n",
    );
    p.run_env(&["sync"], &[("INGESTOR_SECRET_VAULT_KEY", "other")])
        .code(4)
        .stderr_has(&["refusing to load", "hash key"]);
    p.remove("ingestor.toml");
    p.sync().code(4).stderr_has(&["refusing to load"]);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 1);
}

#[test]
fn several_failing_sources_exit_with_the_largest_code() {
    let p = Project::tx();
    p.file("in/bank/a.csv", "id,Date,Memo\nT1,2026-01-01,x\n"); // 1
    p.file(
        "in/card/a.csv",
        "Date,Amount,Memo\n2026-01-01,1.00,x,extra\n",
    ); // 3
    p.sync()
        .code(3)
        .stderr_has(&["source `bank`", "source `card`"]);
}

/// Issue 12: someone else's DuckDB file under the vault's name is refused, untouched.
#[test]
fn a_foreign_duckdb_file_is_refused_and_left_as_it_was() {
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    {
        let other = duckdb::Connection::open(p.path("ingestor.duckdb")).expect("create");
        other
            .execute_batch("CREATE TABLE customers (id INTEGER, name VARCHAR); INSERT INTO customers VALUES (1, 'Ada')")
            .expect("their table");
    }
    let before = std::fs::read(p.path("ingestor.duckdb")).expect("bytes");
    p.sync()
        .code(4)
        .stderr_has(&["not an ingestor vault", "1 tables", "left as it was"]);
    assert_eq!(
        std::fs::read(p.path("ingestor.duckdb")).expect("bytes"),
        before
    );
    // Nor does a rebuild put a vault in its place.
    p.run(&["rebuild"])
        .code(4)
        .stderr_has(&["not an ingestor vault"]);
    assert_eq!(
        std::fs::read(p.path("ingestor.duckdb")).expect("bytes"),
        before
    );
    assert_eq!(p.int("SELECT count(*) FROM customers"), 1);
    assert_eq!(
        p.int("SELECT count(*) FROM duckdb_schemas() WHERE schema_name IN ('vault', 'meta')"),
        0
    );
}

/// Issue 12: a DuckDB file in a newer storage format was adopted as the vault while
/// meta.vault claimed v1.5.0; DuckDB 1.5 clients could not open it.
#[test]
fn a_vault_file_in_a_newer_storage_format_is_refused() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    {
        // An empty DuckDB file made with this DuckDB's defaults.
        let other = duckdb::Connection::open(p.path("ingestor.duckdb")).expect("create");
        other.execute_batch("CHECKPOINT").expect("checkpoint");
    }
    let version: String = duckdb::Connection::open(p.path("ingestor.duckdb"))
        .expect("open")
        .query_row(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert!(
        !version.starts_with("v1.5.0"),
        "this DuckDB's default is {version}"
    );
    p.sync()
        .code(4)
        .stderr_has(&["stored in DuckDB's format", "1.5.0 clients cannot open"]);
    // `rebuild` puts a vault in the format 1.5 clients read in its place.
    p.run(&["rebuild"]).code(0);
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 1);
}

/// Issue 12: an SQLite file as the vault made DuckDB try to download an extension.
#[test]
fn a_vault_that_is_no_duckdb_file_is_refused_without_network() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    let sqlite = b"SQLite format 3\0 and the rest of an SQLite database".to_vec();
    p.file("ingestor.duckdb", &sqlite);
    for cmd in ["sync", "status"] {
        let out = p
            .run(&[cmd])
            .code(4)
            .stderr_has(&["is an SQLite database", "left as it was"]);
        assert!(!out.stderr.contains("download"), "{}", out.stderr);
    }
    assert_eq!(
        std::fs::read(p.path("ingestor.duckdb")).expect("bytes"),
        sqlite
    );
}

/// An empty file under the vault's name (made by `touch`) becomes a vault 1.5 clients read.
#[test]
fn an_empty_vault_file_becomes_a_vault() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    p.file("ingestor.duckdb", b"");
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 1);
    let version: String = p
        .db()
        .query_row(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert!(version.starts_with("v1.5.0"), "{version}");
}

/// Issue 12: a vault key is derived with Argon2id and the lake's salt, recorded in the
/// vault; the lake alone rebuilds the same keys; `secret generate --print` makes keys.
#[test]
fn a_vault_key_is_derived_slowly_with_the_lakes_salt_and_rebuilds_the_same_keys() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    p.file("ingestor.toml", "[hash]\nkey_secret = \"vault_key\"\n");
    let key = p
        .run(&["secret", "generate", "vault_key", "--print"])
        .code(0);
    let key = key.stdout.trim().to_string();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    let env = [("INGESTOR_SECRET_VAULT_KEY", key.as_str())];
    p.run_env(&["sync"], &env).code(0);
    let kdf = p.texts("SELECT value FROM meta.vault WHERE key = 'hash_kdf'");
    let salt = std::fs::read_to_string(p.path("lake/vault-key-salt")).expect("salt");
    assert_eq!(
        kdf,
        [format!("argon2id m=65536 t=3 p=1 salt={}", salt.trim())]
    );
    let keys = p.texts("SELECT hk::VARCHAR FROM vault.hub_tx ORDER BY 1");
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    p.run_env(&["rebuild"], &env).code(0);
    assert_eq!(
        p.texts("SELECT hk::VARCHAR FROM vault.hub_tx ORDER BY 1"),
        keys
    );
    // A vault keeps the derivation it records, whatever the lake's salt file says
    // later: the keys it makes again are the ones it holds.
    p.file("lake/vault-key-salt", "00000000000000000000000000000000\n");
    p.run_env(&["sync", "--force"], &env).code(0);
    assert_eq!(
        p.texts("SELECT hk::VARCHAR FROM vault.hub_tx ORDER BY 1"),
        keys
    );
    assert_eq!(
        p.texts("SELECT value FROM meta.vault WHERE key = 'hash_kdf'"),
        kdf
    );
    // A vault made afresh with the other salt has other keys: the salt keys the hash.
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    p.run_env(&["sync"], &env).code(0);
    assert_ne!(
        p.texts("SELECT hk::VARCHAR FROM vault.hub_tx ORDER BY 1"),
        keys
    );
    // The recipe record names the derivation, never the key.
    let shown = p
        .run(&["sql", "SELECT * FROM meta.vault"])
        .code(0)
        .stdout_has(&["argon2id"]);
    assert!(!shown.stdout.contains(&key));
}

/// Issue 12: a header far wider than any table (a file that is not what its name says,
/// or a runaway export) is refused before anything is loaded, naming the limit.
#[test]
fn an_input_wider_than_the_column_limit_is_refused_by_name() {
    let p = Project::tx();
    p.file("in/bank/a.csv", ROW);
    let mut wide = String::from("id,Date,Amount,Memo");
    for i in 0..20_000 {
        wide.push_str(&format!(",extra{i}"));
    }
    wide.push_str("\nT9,2026-01-09,1.00,x");
    wide.push_str(&",".repeat(20_000));
    wide.push('\n');
    p.file("in/bank/b.csv", &wide);
    p.sync().code(3).stderr_has(&[
        "source `bank`",
        "`in/bank/b.csv`",
        "it has 20004 columns, more than the limit of 16384",
        "`max_columns` under [limits]",
    ]);
    // The good file of the same source still loaded.
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 1);
    p.run(&["check"]).code(3).stdout_has(&["20004 columns"]);
    p.file("ingestor.toml", "[limits]\nmax_columns = 3\n");
    p.remove("in/bank/b.csv");
    p.run(&["check"])
        .code(3)
        .stdout_has(&["it has 4 columns, more than the limit of 3"]);
}
