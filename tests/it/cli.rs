//! The read-side commands: sql, status, runs, schema, init, help.

use crate::common::Project;

fn loaded() -> Project {
    let p = Project::tx();
    p.file(
        "in/bank/jan.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-4.50,\"Coffee, large\"\nT2,2026-01-02,1500.00,\n",
    );
    p.sync().code(0);
    p
}

#[test]
fn sql_prints_table_csv_and_json() {
    let p = loaded();
    let q = "SELECT business_key AS k, 7 AS n, amount FROM main.tx JOIN vault.hub_tx USING (hk) ORDER BY k";
    p.run(&["sql", q])
        .code(0)
        .stdout_has(&["| k  | n | amount  |", "| T1 | 7 | -4.50   |"]);
    let csv = p.run(&["sql", q, "--format", "csv"]).code(0).stdout;
    assert_eq!(csv, "k,n,amount\nT1,7,-4.50\nT2,7,1500.00\n");
    let json = p
        .run(&[
            "sql",
            "SELECT memo, 7 AS n FROM main.tx ORDER BY memo NULLS LAST",
            "--format",
            "json",
        ])
        .code(0)
        .stdout;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        doc,
        serde_json::json!([{"memo": "Coffee, large", "n": 7}, {"memo": null, "n": 7}])
    );
}

/// Issue 10: every view has `load_ts` (TIMESTAMPTZ), and `SELECT *` failed to print it.
#[test]
fn select_star_prints_timestamps_with_time_zone_in_every_format() {
    let p = loaded();
    let micros = p.int("SELECT epoch_us(load_ts::TIMESTAMP) FROM main.tx WHERE memo IS NULL");
    let want = chrono::DateTime::from_timestamp_micros(micros)
        .expect("instant")
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    for format in ["table", "csv", "json"] {
        for q in [
            "SELECT * FROM tx",
            "SELECT * FROM bank",
            "SELECT * FROM meta.runs",
        ] {
            p.run(&["sql", q, "--format", format]).code(0);
        }
        p.run(&[
            "sql",
            "SELECT load_ts FROM tx WHERE memo IS NULL",
            "--format",
            format,
        ])
        .code(0)
        .stdout_has(&[&want]);
    }
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let p = loaded();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ingestor"))
        .arg("-C")
        .arg(p.dir.path())
        .args(["sql", "SELECT * FROM range(1000000)", "--format", "csv"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 5];
    std::io::Read::read_exact(child.stdout.as_mut().expect("stdout"), &mut first).expect("read");
    assert_eq!(&first, b"range");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_query_needing_an_extension_fails_without_fetching_it() {
    let p = loaded();
    p.run(&["sql", "SELECT * FROM read_parquet('x.parquet')"])
        .code(2)
        .stderr_has(&["SQL error", "parquet"]);
    p.run(&["sql", "SELECT * FROM no_such_table"])
        .code(2)
        .stderr_has(&["SQL error", "no_such_table"]);
}

#[test]
fn status_lists_sources_and_hubs() {
    let p = loaded();
    let out = p.run(&["status"]).code(0);
    assert!(out.stdout.contains("bank"), "{}", out.stdout);
    let hub_line = out
        .stdout
        .lines()
        .find(|l| l.contains("| tx "))
        .expect("hub row");
    assert!(hub_line.contains("| 2 "), "{hub_line}");
}

#[test]
fn runs_lists_runs_and_failed_inputs() {
    let p = loaded();
    p.file(
        "in/bank/bad.csv",
        "id,Date,Amount,Memo\nT3,2026-01-03,nope,x\n",
    );
    p.sync().code(1);
    let out = p.run(&["runs"]).code(0);
    assert!(out.stdout.contains("failed inputs"), "{}", out.stdout);
    assert!(out.stdout.contains("in/bank/bad.csv"), "{}", out.stdout);
    assert!(out.stdout.contains("rejected"), "{}", out.stdout);
    assert_eq!(
        p.texts("SELECT status FROM meta.runs ORDER BY run_id"),
        ["ok", "failed"]
    );
    assert_eq!(p.int("SELECT exit_code FROM meta.runs WHERE run_id = 2"), 1);
}

#[test]
fn schema_lists_columns_with_types_and_tag_fields() {
    let p = loaded();
    let out = p.run(&["schema", "bank"]).code(0);
    assert!(out.stdout.contains("vault.sat_bank__"), "{}", out.stdout);
    let amount = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Amount"))
        .expect("Amount");
    assert!(
        amount.contains("decimal(18,2)") && amount.contains("tag field `amount`"),
        "{amount}"
    );
    p.run(&["schema", "nosuch"]).code(2);
}

#[test]
fn init_scaffolds_a_project_that_syncs() {
    let p = Project::new();
    p.run(&["init", "myproject"]).code(0);
    let sub = p.path("myproject");
    let run = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("ingestor")
            .expect("bin")
            .arg("-C")
            .arg(&sub)
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(run(&["check"]).0, Some(0));
    assert_eq!(run(&["sync"]).0, Some(0));
    let (_, csv) = run(&[
        "sql",
        "SELECT count(*) AS n FROM transactions",
        "--format",
        "csv",
    ]);
    assert_eq!(csv, "n\n2\n");
    // A second init refuses to overwrite.
    p.run(&["init", "myproject"])
        .code(2)
        .stderr_has(&["already"]);
}

#[test]
fn help_and_version_exit_zero() {
    let p = Project::new();
    p.run(&["--help"])
        .code(0)
        .stdout_has(&["sync", "check", "status", "runs", "schema", "sql", "init"]);
    p.run(&["--version"]).code(0).stdout_has(&["ingestor"]);
}

/// Issue 10: a folder that is not a project got an empty vault and exit 0.
#[test]
fn a_folder_that_is_not_a_project_is_refused_with_exit_2() {
    let p = Project::new();
    for cmd in ["sync", "check"] {
        p.run(&[cmd]).code(2).stderr_has(&[
            "is not an ingestor project",
            "no `sources` folder",
            "ingestor init",
        ]);
    }
    assert!(!p.path("ingestor.duckdb").exists());
    // `init` makes it one.
    p.run(&["init"]).code(0);
    p.run(&["check"]).code(0);
}

/// Issue 10: one broken tag file stopped `sql` and `status`, which need no definitions.
#[test]
fn a_broken_definition_does_not_stop_reading_the_vault() {
    let p = loaded();
    p.file("tags/tx.toml", "[fields\nbroken");
    p.run(&["sql", "SELECT count(*) AS n FROM tx", "--format", "csv"])
        .code(0)
        .stdout_has(&["n\n2\n"]);
    p.run(&["status"]).code(0).stdout_has(&["| tx ", "bank"]);
    p.run(&["runs"]).code(0);
    p.run(&["lake", "verify"]).code(0);
    p.run(&["sync"]).code(2).stderr_has(&["tags/tx.toml"]);
}

#[test]
fn sql_reads_the_query_from_stdin_with_a_dash() {
    let p = loaded();
    let out = assert_cmd::Command::cargo_bin("ingestor")
        .expect("binary")
        .arg("-C")
        .arg(p.dir.path())
        .args(["sql", "-", "--format", "csv"])
        .write_stdin("SELECT count(*) AS n\nFROM main.tx\n")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2\n");
}

/// Issue 10: every command that prints results can print JSON.
#[test]
fn status_runs_schema_and_sync_print_json() {
    let p = loaded();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = p.run(args).code(0);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", out.stdout))
    };
    let status = json(&["status", "--format", "json"]);
    assert_eq!(status["sources"][0]["source"], "bank");
    assert_eq!(status["sources"][0]["files"], 1);
    assert_eq!(
        status["hubs"][0],
        serde_json::json!({"tag": "tx", "hub_keys": 2})
    );
    let runs = json(&["runs", "--format", "json"]);
    assert_eq!(runs["runs"][0]["status"], "ok");
    assert_eq!(runs["failed_inputs"], serde_json::json!([]));
    let schema = json(&["schema", "--format", "json"]);
    assert_eq!(schema[0]["source"], "bank");
    let columns = &schema[0]["satellites"][0]["columns"];
    assert_eq!(
        columns[2],
        serde_json::json!({"name": "Amount", "type": "decimal(18,2)", "field": "amount"})
    );
    let sync = json(&["sync", "--format", "json"]);
    assert_eq!(sync["sources"][0]["units"][0]["status"], "skipped");
    // Decimals are numbers when a double holds them exactly, keys in column order.
    let out = p
        .run(&[
            "sql",
            "SELECT 2 AS b, amount AS a, 12345678901234567.89 AS big FROM tx ORDER BY a LIMIT 1",
            "--format",
            "json",
        ])
        .code(0);
    assert!(
        out.stdout
            .contains("\"b\": 2,\n    \"a\": -4.5,\n    \"big\": \"12345678901234567.89\""),
        "{}",
        out.stdout
    );
}

#[test]
fn sql_runs_several_statements_and_prints_the_last_result() {
    let p = loaded();
    p.run(&[
        "sql",
        "CREATE TEMP TABLE t AS SELECT amount FROM main.tx; SELECT count(*) AS n FROM t",
        "--format",
        "csv",
    ])
    .code(0)
    .stdout_has(&["n\n2\n"]);
}

#[test]
fn every_subcommand_help_shows_an_example() {
    let p = Project::new();
    for cmd in [
        "init", "sync", "check", "status", "runs", "schema", "sql", "rebuild", "lake",
    ] {
        p.run(&[cmd, "--help"])
            .code(0)
            .stdout_has(&["Examples:", &format!("ingestor {cmd}")]);
    }
}
