//! The kill harness (issue 12): a sync of several sources, killed with SIGKILL at points
//! spread over its measured run, then synced again, must end in the vault an
//! uninterrupted run makes: the same hubs, the same satellite rows (hk, hashdiff,
//! file_hash, row_number), the same loads, no run left `running`, no temporary files, and
//! a further sync that skips everything.
//!
//! CI kills at `INGESTOR_KILL_POINTS` points (6 by default); `just kill-test` runs 24.

use std::time::Instant;

use crate::common::{Project, BANK_SOURCE, CARD_SOURCE, TX_TAG};

/// A project of three sources: `bank` (keyed, two large CSV files), `card` (content
/// keyed, three small ones) and `stmt` (a workbook).
fn setup() -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file("sources/bank.toml", BANK_SOURCE);
    p.file("sources/card.toml", CARD_SOURCE);
    p.file(
        "sources/stmt.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Description\"\n\
         [reader]\ntype = \"excel\"\npath = \"in/stmt\"\n",
    );
    p.file(
        "in/stmt/statement.xlsx",
        crate::common::excel_fixture("statement.xlsx"),
    );
    for f in 0..2 {
        p.file(
            &format!("in/bank/part-{f}.csv"),
            crate::common::bank_csv(f, 50_000),
        );
    }
    for m in 1..=3 {
        let mut body = String::from("Date,Amount,Memo\n");
        for i in 0..200 {
            body.push_str(&format!(
                "2026-0{m}-{:02},-{}.50,shop {i}\n",
                i % 28 + 1,
                i % 40
            ));
        }
        p.file(&format!("in/card/2026-0{m}.csv"), body);
    }
    p
}

/// What must be equal after a kill and a finishing sync.
fn fingerprint(p: &Project) -> Vec<String> {
    let mut out = p.texts(
        "SELECT 'hub ' || count(*) || ' ' || md5(string_agg(hk::VARCHAR || business_key, ',' ORDER BY hk)) \
         FROM vault.hub_tx",
    );
    for source in ["bank", "card", "stmt"] {
        out.extend(p.texts(&format!(
            "SELECT '{source} ' || count(*) || ' ' || md5(string_agg(hk::VARCHAR || hashdiff::VARCHAR || \
             file_hash || \"row_number\"::VARCHAR, ',' ORDER BY hk, hashdiff, file_hash, \"row_number\")) \
             FROM main.{source}"
        )));
    }
    out.extend(p.texts(
        "SELECT source || ' ' || path || ' ' || file_hash || ' ' || rows_read || ' ' || new_keys || ' ' || \
         new_rows || ' ' || changed_rows || ' ' || unchanged_rows FROM meta.loads \
         WHERE status = 'loaded' ORDER BY source, path",
    ));
    out
}

fn temp_files(p: &Project) -> Vec<String> {
    let mut found = Vec::new();
    if p.path("ingestor.duckdb.tmp").exists() {
        found.push("ingestor.duckdb.tmp".to_string());
    }
    let mut stack = vec![p.path("lake")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                stack.push(e.path());
            } else if name.starts_with('.') || name.ends_with(".tmp") {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

/// Units committed in a killed vault, read without writing to it (the finishing sync,
/// not the test, recovers it); -1 before the vault was set up.
fn committed_units(p: &Project) -> i64 {
    let path = p.path("ingestor.duckdb");
    if !path.exists() {
        return -1;
    }
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("config");
    let Ok(conn) = duckdb::Connection::open_with_flags(&path, config) else {
        return -1;
    };
    conn.query_row(
        "SELECT count(*) FROM meta.loads WHERE status = 'loaded'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(-1)
}

#[test]
fn a_sync_killed_anywhere_ends_in_the_vault_of_an_uninterrupted_run() {
    let points: u32 = std::env::var("INGESTOR_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let reference = setup();
    let start = Instant::now();
    reference.sync().code(0);
    let duration = start.elapsed();
    let want = fingerprint(&reference);
    assert_eq!(want.len(), 4 + 6, "{want:?}");
    let mut hits = Vec::new();
    for i in 0..points {
        // Spread over the run; the first point lands before anything could commit.
        let at = duration.mul_f64((f64::from(i) + 0.5) / f64::from(points));
        let p = setup();
        let status = p.kill_sync_after(at);
        // The phase the kill hit: how many of the six units had committed.
        let committed = committed_units(&p);
        hits.push(format!(
            "{:.0} ms: {}",
            at.as_secs_f64() * 1000.0,
            match (status.code(), committed) {
                (Some(0), _) => "after the run ended".to_string(),
                (_, -1) => "before the vault was set up".to_string(),
                (_, n) => format!("{n} of 6 units committed"),
            }
        ));
        p.sync().code(0);
        let what = hits.last().expect("hit").clone();
        assert_eq!(fingerprint(&p), want, "after a kill at {what}");
        assert_eq!(
            p.int("SELECT count(*) FROM meta.runs WHERE status = 'running'"),
            0,
            "after a kill at {what}"
        );
        assert!(
            temp_files(&p).is_empty(),
            "after a kill at {what}: {:?}",
            temp_files(&p)
        );
        let again = p.run(&["sync", "--format", "json"]).code(0);
        let report: serde_json::Value = serde_json::from_str(&again.stdout).expect("json");
        let statuses: Vec<&str> = report["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .flat_map(|s| s["units"].as_array().expect("units"))
            .map(|u| u["status"].as_str().unwrap_or(""))
            .collect();
        assert!(
            statuses.len() == 6 && statuses.iter().all(|s| *s == "skipped"),
            "after a kill at {what}: {statuses:?}"
        );
        p.run(&["lake", "verify"]).code(0);
    }
    // Where the kills landed, for whoever reads the test's output.
    eprintln!(
        "uninterrupted sync: {:.0} ms; kills: {}",
        duration.as_secs_f64() * 1000.0,
        hits.join("; ")
    );
}

/// Issue 12: SIGTERM (or Ctrl-C) ends a sync at once and cleanly: exit 130, the run
/// marked `interrupted` by the process itself, nothing partial; the next sync finishes
/// the work.
#[test]
fn a_signal_marks_the_run_interrupted_and_the_next_sync_finishes() {
    let reference = setup();
    let start = Instant::now();
    reference.sync().code(0);
    let duration = start.elapsed();
    let want = fingerprint(&reference);
    let p = setup();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ingestor"))
        .arg("-C")
        .arg(p.dir.path())
        .arg("sync")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Once the vault exists and before the run could end.
    let waited = Instant::now();
    while !p.path("ingestor.duckdb").exists() && waited.elapsed() < duration {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(duration / 4);
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The signal came a quarter into a run as long as the reference one.
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("config");
    let conn =
        duckdb::Connection::open_with_flags(p.path("ingestor.duckdb"), config).expect("open");
    let status: String = conn
        .query_row(
            "SELECT status FROM meta.runs ORDER BY run_id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("run");
    drop(conn);
    assert_eq!(status, "interrupted");
    p.sync().code(0);
    assert_eq!(fingerprint(&p), want);
    assert!(temp_files(&p).is_empty());
}
