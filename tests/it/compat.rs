//! The vault opens in an official DuckDB 1.5 client (the `duckdb<2` Python package).
//!
//! Without the package these tests fail, saying how to install it; they are skipped only
//! when asked (`INGESTOR_SKIP_COMPAT=1`), and then say so on the terminal. A test that
//! passes without having checked anything would hide exactly the break it exists for.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::Project;

/// Whether `python3 -c "import duckdb"` works and is a 1.x client. Missing, it fails the
/// test unless INGESTOR_SKIP_COMPAT is set.
fn duckdb_15_available() -> bool {
    let out = Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output();
    let version = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match version {
        Some(v) if v.starts_with("1.") => true,
        other => {
            let skip = std::env::var_os("INGESTOR_SKIP_COMPAT").is_some_and(|v| v != "0");
            assert!(
                skip && std::env::var_os("CI").is_none(),
                "these tests need the DuckDB 1.x Python client (pip install 'duckdb<2'), found \
                 {other:?}; set INGESTOR_SKIP_COMPAT=1 to skip them (never in CI)"
            );
            // Past the test harness's capture, so that a skip is seen.
            if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
                let _ = std::io::Write::write_all(
                    &mut tty,
                    format!("SKIPPED: DuckDB 1.5 compatibility test, no 1.x Python client ({other:?})\n")
                        .as_bytes(),
                );
            }
            false
        }
    }
}

#[test]
fn a_duckdb_1_5_client_reads_the_views() {
    if !duckdb_15_available() {
        return;
    }
    let p = Project::shipped();
    p.sync().code(0);
    reads_the_views(&p);
}

#[test]
fn a_rebuilt_vault_opens_in_a_duckdb_1_5_client() {
    if !duckdb_15_available() {
        return;
    }
    let p = Project::shipped();
    p.sync().code(0);
    // One source rebuilt: the vault is copied, then changed.
    p.run(&["rebuild", "card"]).code(0);
    reads_the_views(&p);
    // Everything rebuilt into a new file.
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    p.run(&["rebuild"]).code(0);
    reads_the_views(&p);
}

/// A DuckDB 1.5 client opens the vault and counts what this build counts.
fn reads_the_views(p: &Project) {
    let queries = [
        "SELECT count(*) FROM main.transactions",
        "SELECT count(*) FROM main.bank_giro",
        "SELECT count(*) FROM vault.hub_workouts",
        "SELECT (sum(amount) * 100)::BIGINT FROM main.transactions",
    ];
    let expected: Vec<i64> = queries
        .iter()
        .map(|q| p.db().query_row(q, [], |r| r.get::<_, i64>(0)).expect(q))
        .collect();
    assert!(expected.iter().all(|&n| n != 0), "{expected:?}");
    let script = r#"
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for q in sys.argv[2:]:
    print(int(con.execute(q).fetchone()[0]))
print(duckdb.__version__)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(p.path("ingestor.duckdb"))
        .args(queries)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let got: Vec<i64> = lines[..4]
        .iter()
        .map(|l| l.parse().expect("number"))
        .collect();
    assert_eq!(got, expected);
    assert!(lines[4].starts_with("1."), "client version {}", lines[4]);
}

#[test]
fn a_vault_locked_by_another_process_exits_4_and_says_so() {
    if !duckdb_15_available() {
        return;
    }
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    p.sync().code(0);
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(30)",
        ])
        .arg(p.path("ingestor.duckdb"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert_eq!(line.trim(), "ready");
    let out = p.run(&["sync"]);
    let _ = holder.kill();
    let _ = holder.wait();
    let out = out
        .code(4)
        .stderr_has(&["locked by another process", "ingestor.duckdb"]);
    assert!(
        out.stderr.contains(&format!("PID {}", holder.id())),
        "{}",
        out.stderr
    );
}
