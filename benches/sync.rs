//! Benchmark: the real `ingestor` binary against DuckDB's own SQL doing the same vault work,
//! on the same files, in the same run.
//!
//! `cargo bench --bench sync -- [--rows N] [--runs N] [--small-files N] [--memory-limit 256MB]
//! [--pdf-files N]`
//!
//! It generates a bank-transactions CSV of N rows, a changed copy (1% of rows modified, 1%
//! appended) and a folder of small monthly files, then times, as medians of `--runs`:
//! ingestor's first sync, unchanged re-sync, sync of the changed file and first sync of
//! the small files (each a separate process in a temp project), and DuckDB SQL doing the
//! same load (read_csv, md5 key and hashdiff, insert-only hub and satellite, one
//! transaction) through the duckdb crate. Every figure is printed as `name: value`.
//! The PDF step syncs a folder of two-page statements (the five producers' statements in
//! tests/fixtures/pdf, each copy made unique) and, when poppler's `pdftotext` is
//! installed, runs `pdftotext -layout` on the same files, one process a file.
//! Before each timed step the disk is settled (`sync`, untimed), so no step pays for
//! writing back what was written before it.

// One libc call (getrusage) reads the children's peak memory; nothing else is unsafe.
#![allow(unsafe_code)]

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use duckdb::Connection;

struct Args {
    rows: usize,
    runs: usize,
    small_files: usize,
    /// `[duckdb] memory_limit` for the ingestor projects, if any.
    memory_limit: Option<String>,
    /// Two-page PDF statements in the PDF step.
    pdf_files: usize,
}

fn args() -> Args {
    let mut a = Args {
        rows: 1_000_000,
        runs: 3,
        small_files: 1000,
        memory_limit: None,
        pdf_files: 120,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> usize {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--rows" => a.rows = value(),
            "--runs" => a.runs = value(),
            "--small-files" => a.small_files = value(),
            "--pdf-files" => a.pdf_files = value(),
            "--memory-limit" => a.memory_limit = it.next(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A small deterministic generator (xorshift), so every run writes the same files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const HEADER: &str =
    "transaction_id,booking_date,value_date,amount,currency,counterparty,iban,description,category\n";
const PAYEES: [&str; 8] = [
    "Müller & Söhne GmbH",
    "Café Zeitlos",
    "Stadtwerke München",
    "Zoë's Bakery",
    "Łódź Transport",
    "ACME Corp.",
    "Crème de la Crème",
    "Österreichische Post",
];
const CATEGORIES: [&str; 6] = ["groceries", "rent", "utilities", "travel", "salary", "misc"];

/// One row of the bank CSV; `version` changes the amount (a modified row).
fn row(out: &mut String, i: usize, version: u64) {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    r.next();
    let day = r.below(365);
    let (m, d) = (1 + day / 31 % 12, 1 + day % 28);
    let cents = r.below(500_000) as i64 - 250_000 + version as i64 * 137;
    let payee = PAYEES[r.below(8) as usize];
    let _ = writeln!(
        out,
        "TX{i:010},2025-{m:02}-{d:02},2025-{m:02}-{:02},{}{}.{:02},EUR,{payee},DE{:020},\"Invoice {}, ref \"\"{:08x}\"\" — paid by card, thank you for your order no. {} (SEPA mandate M-{:016x})\",{}",
        (d % 28) + 1,
        if cents < 0 { "-" } else { "" },
        cents.abs() / 100,
        cents.abs() % 100,
        r.below(10u64.pow(18)),
        r.below(100_000),
        r.next() as u32,
        r.below(1_000_000),
        r.next(),
        CATEGORIES[r.below(6) as usize],
    );
}

fn write_file(path: &Path, rows: impl Iterator<Item = (usize, u64)>) {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    w.write_all(HEADER.as_bytes()).expect("write");
    let mut line = String::with_capacity(512);
    for (i, version) in rows {
        line.clear();
        row(&mut line, i, version);
        w.write_all(line.as_bytes()).expect("write");
    }
    w.flush().expect("flush");
}

const TAG: &str = r#"[fields]
booking_date = { type = "date" }
amount = { type = "decimal" }
description = { type = "text", nullable = true }
"#;

fn source(path: &str) -> String {
    format!(
        "tags = [\"transactions\"]\nprimary_key = [\"transaction_id\"]\nkey_namespace = \"bank\"\n\
         [reader]\ntype = \"csv\"\npath = \"{path}\"\n"
    )
}

/// A fresh ingestor project whose source reads `input` (a file or folder, linked in).
fn project(root: &Path, name: &str, input: &Path, memory_limit: Option<&str>) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tags")).expect("mkdir");
    std::fs::create_dir_all(dir.join("sources")).expect("mkdir");
    std::fs::write(dir.join("tags/transactions.toml"), TAG).expect("tag");
    if let Some(limit) = memory_limit {
        std::fs::write(
            dir.join("ingestor.toml"),
            format!("[duckdb]\nmemory_limit = \"{limit}\"\n"),
        )
        .expect("ingestor.toml");
    }
    let target = dir.join("input");
    if input.is_dir() {
        std::fs::create_dir_all(&target).expect("mkdir");
        for e in std::fs::read_dir(input).expect("read").flatten() {
            std::fs::hard_link(e.path(), target.join(e.file_name())).expect("link");
        }
        std::fs::write(dir.join("sources/bank.toml"), source("input")).expect("source");
    } else {
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::hard_link(input, target.join("bank.csv")).expect("link");
        std::fs::write(dir.join("sources/bank.toml"), source("input/bank.csv")).expect("source");
    }
    dir
}

/// Write every dirty page to disk, untimed, before a timed step: otherwise the writeback
/// of the generated inputs, or of the other side's vault and lake, lands on whichever
/// step runs next. Each step still pays for its own writes.
fn settle() {
    let status = Command::new("sync").status().expect("run sync");
    assert!(status.success(), "sync failed");
}

/// Run `ingestor sync` in `dir`; its wall time in seconds.
fn ingestor_sync(dir: &Path) -> f64 {
    settle();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ingestor"))
        .arg("-C")
        .arg(dir)
        .args(["-q", "sync"])
        .output()
        .expect("run ingestor");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ingestor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

/// Largest resident set of any child process so far, in MB.
fn children_peak_rss_mb() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss as f64 / 1024.0
}

/// DuckDB doing the same vault work in SQL.
struct SqlVault {
    conn: Connection,
}

impl SqlVault {
    fn new(path: &Path) -> Self {
        let _ = std::fs::remove_file(path);
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "CREATE TABLE hub (hk VARCHAR, business_key VARCHAR, load_ts TIMESTAMPTZ, record_source VARCHAR);
             CREATE TABLE sat (hk VARCHAR, load_ts TIMESTAMPTZ, hashdiff VARCHAR, record_source VARCHAR,
                 transaction_id VARCHAR, booking_date DATE, value_date VARCHAR, amount DECIMAL(18,2),
                 currency VARCHAR, counterparty VARCHAR, iban VARCHAR, description VARCHAR, category VARCHAR);",
        )
        .expect("ddl");
        SqlVault { conn }
    }

    /// Load one file (or glob) in one transaction; seconds.
    fn load(&self, file: &str) -> f64 {
        settle();
        let start = Instant::now();
        self.conn
            .execute_batch(&format!(
                "BEGIN;
                 CREATE TEMP TABLE stage AS
                   SELECT md5('bank|' || transaction_id) AS hk,
                          md5(concat_ws('|', transaction_id, booking_date, value_date, amount, currency,
                                        counterparty, iban, description, category)) AS hashdiff, *
                   FROM read_csv('{file}', header = true,
                        columns = {{'transaction_id': 'VARCHAR', 'booking_date': 'DATE', 'value_date': 'VARCHAR',
                                    'amount': 'DECIMAL(18,2)', 'currency': 'VARCHAR', 'counterparty': 'VARCHAR',
                                    'iban': 'VARCHAR', 'description': 'VARCHAR', 'category': 'VARCHAR'}});
                 INSERT INTO hub SELECT hk, any_value(transaction_id), now(), 'bank' FROM stage s
                   WHERE NOT EXISTS (SELECT 1 FROM hub h WHERE h.hk = s.hk) GROUP BY hk;
                 INSERT INTO sat SELECT s.hk, now(), s.hashdiff, 'bank', s.* EXCLUDE (hk, hashdiff)
                   FROM stage s LEFT JOIN (SELECT hk, arg_max(hashdiff, load_ts) AS hashdiff FROM sat GROUP BY hk) l
                   USING (hk) WHERE l.hashdiff IS NULL OR l.hashdiff <> s.hashdiff;
                 DROP TABLE stage;
                 COMMIT;"
            ))
            .expect("sql load");
        start.elapsed().as_secs_f64()
    }

    fn counts(&self) -> (i64, i64) {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM hub), (SELECT count(*) FROM sat)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("counts")
    }
}

/// Hub and satellite rows of an ingestor project's vault.
fn vault_counts(dir: &Path) -> (i64, i64) {
    let conn = Connection::open(dir.join("ingestor.duckdb")).expect("open vault");
    conn.query_row(
        "SELECT (SELECT count(*) FROM vault.hub_transactions), (SELECT count(*) FROM main.bank)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("counts")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let work = tempfile::Builder::new()
        .prefix("ingestor-bench")
        .tempdir()
        .expect("tempdir");
    let root = work.path();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    println!(
        "machine: {} cores, {memory:.1} GB memory",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("rows: {}", a.rows);
    println!(
        "duckdb_memory_limit: {}",
        a.memory_limit.as_deref().unwrap_or("ingestor default")
    );

    let t = Instant::now();
    let base = root.join("bank.csv");
    write_file(&base, (0..a.rows).map(|i| (i, 0)));
    let changed = root.join("bank-changed.csv");
    let extra = a.rows / 100;
    write_file(
        &changed,
        (0..a.rows + extra).map(|i| (i, u64::from(i < a.rows && i % 100 == 7))),
    );
    let small = root.join("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    for f in 0..a.small_files {
        write_file(
            &small.join(format!("month-{f:04}.csv")),
            (0..100).map(|i| (a.rows * 2 + f * 100 + i, 0)),
        );
    }
    let size_mb = std::fs::metadata(&base).map_or(0, |m| m.len()) as f64 / 1e6;
    println!("input_mb: {size_mb:.0}");
    println!("generate_s: {:.2}", t.elapsed().as_secs_f64());

    // ingestor, a separate process in a temp project per run.
    let (mut first, mut resync, mut change, mut smalls) = (vec![], vec![], vec![], vec![]);
    let mut ingestor_counts = (0, 0);
    for run in 0..a.runs {
        let dir = project(
            root,
            &format!("ingestor-{run}"),
            &base,
            a.memory_limit.as_deref(),
        );
        first.push(ingestor_sync(&dir));
        resync.push(ingestor_sync(&dir));
        std::fs::remove_file(dir.join("input/bank.csv")).expect("rm");
        std::fs::hard_link(&changed, dir.join("input/bank.csv")).expect("link");
        change.push(ingestor_sync(&dir));
        ingestor_counts = vault_counts(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let dir = project(
            root,
            &format!("small-{run}"),
            &small,
            a.memory_limit.as_deref(),
        );
        smalls.push(ingestor_sync(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let peak = children_peak_rss_mb();

    // DuckDB's SQL, same files, same work.
    let (mut sql_first, mut sql_resync, mut sql_change) = (vec![], vec![], vec![]);
    let mut sql_counts = (0, 0);
    for run in 0..a.runs {
        let db = SqlVault::new(&root.join(format!("sql-{run}.duckdb")));
        sql_first.push(db.load(&base.to_string_lossy()));
        sql_resync.push(db.load(&base.to_string_lossy()));
        sql_change.push(db.load(&changed.to_string_lossy()));
        sql_counts = db.counts();
    }
    let (f, r, c, s) = (
        median(first),
        median(resync),
        median(change),
        median(smalls),
    );
    let (sf, sr, sc) = (median(sql_first), median(sql_resync), median(sql_change));
    println!("ingestor_first_sync_s: {f:.3}");
    println!("ingestor_resync_s: {r:.3}");
    println!("ingestor_changed_sync_s: {c:.3}");
    println!("ingestor_small_files_s: {s:.3}");
    println!("duckdb_sql_first_load_s: {sf:.3}");
    println!("duckdb_sql_reload_s: {sr:.3}");
    println!("duckdb_sql_changed_load_s: {sc:.3}");
    println!("first_sync_ratio: {:.3}", f / sf);
    println!("resync_ratio: {:.3}", r / sr);
    println!("changed_ratio: {:.3}", c / sc);
    println!("first_sync_rows_per_s: {:.0}", a.rows as f64 / f);
    println!(
        "small_files_ms_per_file: {:.2}",
        s * 1000.0 / a.small_files as f64
    );
    // What the small files cost beyond their rows, at the first sync's rate per row.
    let row_cost = f / a.rows as f64 * (a.small_files * 100) as f64;
    println!(
        "small_files_overhead_ms_per_file: {:.2}",
        (s - row_cost).max(0.0) * 1000.0 / a.small_files as f64
    );
    println!("peak_rss_mb: {peak:.0}");
    println!(
        "hub_rows: {} ingestor, {} duckdb_sql",
        ingestor_counts.0, sql_counts.0
    );
    println!(
        "satellite_rows: {} ingestor, {} duckdb_sql",
        ingestor_counts.1, sql_counts.1
    );
    let same = ingestor_counts == sql_counts;
    println!("counts_match: {same}");
    assert!(
        same,
        "ingestor and DuckDB SQL disagree on hub and satellite counts"
    );
    if a.pdf_files > 0 {
        pdf_step(root, a.pdf_files, a.runs);
    }
}

const PDF_SOURCE: &str = r#"
tags = ["transactions"]
[fields]
booking_date = "Buchungstag"
amount = "Betrag"
description = "Verwendungszweck"
[reader]
type = "pdf"
path = "input"
row = '(?P<Buchungstag>\d{2}\.\d{2}\.\d{4}) (?P<Verwendungszweck>.+?) (?P<Betrag>-?[\d.]+,\d{2}-?) (?P<Saldo>-?[\d.]+,\d{2}-?)'
continuation = "Verwendungszweck"
skip = ['^Seite \d+ von \d+$', '^Buchungstag', '^Neuer Kontostand', '^Musterbank', '^IBAN', '^Alter Kontostand']
decimal_separator = ","
thousands_separator = "."
date_format = "%d.%m.%Y"
"#;

/// PDF statements: ingestor's sync of a folder of them, in pages a second, beside
/// `pdftotext -layout` (text only, no rows, no vault) on the same files.
fn pdf_step(root: &Path, files: usize, runs: usize) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdf");
    let producers = ["reportlab", "fpdf", "groff", "libreoffice", "chromium"];
    let input = root.join("pdf-input");
    std::fs::create_dir_all(&input).expect("mkdir");
    let mut pages = 0;
    for i in 0..files {
        let name = producers[i % producers.len()];
        let mut bytes =
            std::fs::read(fixtures.join(format!("statement-{name}.pdf"))).expect("fixture");
        // Bytes after %%EOF are ignored by readers; they make each copy its own unit.
        bytes.extend_from_slice(format!("% copy {i}\n").as_bytes());
        std::fs::write(input.join(format!("{i:04}-{name}.pdf")), bytes).expect("write");
        pages += 2;
    }
    let mut times = Vec::new();
    for run in 0..runs {
        let dir = root.join(format!("pdf-{run}"));
        std::fs::create_dir_all(dir.join("tags")).expect("mkdir");
        std::fs::create_dir_all(dir.join("sources")).expect("mkdir");
        std::fs::create_dir_all(dir.join("input")).expect("mkdir");
        std::fs::write(dir.join("tags/transactions.toml"), TAG).expect("tag");
        std::fs::write(dir.join("sources/statements.toml"), PDF_SOURCE).expect("source");
        for e in std::fs::read_dir(&input).expect("read").flatten() {
            std::fs::hard_link(e.path(), dir.join("input").join(e.file_name())).expect("link");
        }
        times.push(ingestor_sync(&dir));
    }
    let t = median(times);
    println!("pdf_files: {files}");
    println!("pdf_pages: {pages}");
    println!("pdf_sync_s: {t:.3}");
    println!("pdf_pages_per_s: {:.0}", pages as f64 / t);
    let have_pdftotext = Command::new("pdftotext").arg("-v").output().is_ok();
    if !have_pdftotext {
        println!("pdftotext_pages_per_s: not installed");
        return;
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        settle();
        let start = Instant::now();
        for e in std::fs::read_dir(&input).expect("read").flatten() {
            let out = Command::new("pdftotext")
                .arg("-layout")
                .arg(e.path())
                .arg("-")
                .output()
                .expect("pdftotext");
            assert!(
                out.status.success(),
                "pdftotext failed on {}",
                e.path().display()
            );
        }
        times.push(start.elapsed().as_secs_f64());
    }
    let p = median(times);
    println!("pdftotext_layout_s: {p:.3}");
    println!("pdftotext_pages_per_s: {:.0}", pages as f64 / p);
    println!("pdf_vs_pdftotext_ratio: {:.2}", t / p);
}
