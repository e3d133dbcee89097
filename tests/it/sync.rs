//! `sync`: the load scenarios the vault must get right.

use crate::common::Project;

const BANK_V1: &str = "id,Date,Amount,Memo\n\
    T1,2026-01-01,-4.50,Coffee\n\
    T2,2026-01-02,1500.00,Salary\n\
    T3,2026-01-03,-60.25,Groceries\n";

#[test]
fn first_load_fills_hub_satellite_meta_and_views() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync()
        .code(0)
        .stdout_has(&["bank", "loaded", "in/bank/jan.csv"]);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 3);
    let sats = p.satellites("bank");
    assert_eq!(sats.len(), 1);
    assert!(sats[0].starts_with("sat_bank__2"), "{sats:?}");
    assert_eq!(p.int(&format!("SELECT count(*) FROM vault.{}", sats[0])), 3);
    // Typed by the tag: exact decimal, real dates.
    assert_eq!(
        p.texts("SELECT amount::VARCHAR FROM main.tx ORDER BY date"),
        ["-4.50", "1500.00", "-60.25"]
    );
    assert_eq!(
        p.texts("SELECT typeof(date) FROM main.tx LIMIT 1"),
        ["DATE"]
    );
    assert_eq!(
        p.int("SELECT sum(amount * 100)::BIGINT FROM main.tx"),
        143525
    );
    // Provenance: the line each row came from, and the lake file it came from.
    assert_eq!(
        p.texts("SELECT \"row_number\"::VARCHAR FROM main.bank ORDER BY \"row_number\""),
        ["2", "3", "4"]
    );
    let hash = blake3::hash(BANK_V1.as_bytes()).to_hex().to_string();
    assert_eq!(
        p.int(&format!(
            "SELECT count(*) FROM main.bank WHERE file_hash = '{hash}'"
        )),
        3
    );
    assert_eq!(p.lake_files().len(), 1);
    assert_eq!(
        std::fs::read(&p.lake_files()[0]).expect("lake"),
        BANK_V1.as_bytes()
    );
    assert_eq!(
        p.int(&format!(
            "SELECT count(*) FROM meta.files WHERE file_hash = '{hash}' AND source = 'bank' AND size = {}",
            BANK_V1.len()
        )),
        1
    );
    assert_eq!(
        p.int("SELECT new_rows FROM meta.loads WHERE status = 'loaded'"),
        3
    );
    assert_eq!(p.texts("SELECT status FROM meta.runs"), ["ok"]);
    // Business keys are readable; the hub knows who brought each key.
    assert_eq!(
        p.texts("SELECT business_key || '@' || record_source FROM vault.hub_tx ORDER BY 1"),
        ["T1@bank", "T2@bank", "T3@bank"]
    );
}

#[test]
fn unchanged_resync_adds_nothing_and_is_reported_as_skipped() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    p.sync().code(0).stdout_has(&["skipped"]);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 3);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        1
    );
    // --force reads it again, and still adds nothing: every row is unchanged.
    let out = p.run(&["sync", "--force", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let unit = &doc["sources"][0]["units"][0];
    assert_eq!(unit["status"], "loaded");
    assert_eq!(unit["counts"]["unchanged_rows"], 3);
    assert_eq!(unit["counts"]["new_rows"], 0);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
}

#[test]
fn changed_file_adds_exactly_the_changed_and_new_rows() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    // T3 corrected, T4 appended, T1 and T2 untouched.
    p.file(
        "in/bank/jan.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-4.50,Coffee\nT2,2026-01-02,1500.00,Salary\n\
         T3,2026-01-03,-62.25,Groceries\nT4,2026-01-04,-9.99,Music\n",
    );
    let out = p.run(&["sync", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let counts = &doc["sources"][0]["units"][0]["counts"];
    assert_eq!(counts["new_rows"], 1);
    assert_eq!(counts["changed_rows"], 1);
    assert_eq!(counts["unchanged_rows"], 2);
    assert_eq!(counts["new_keys"], 1);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 4);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 5);
    // History is kept; the tag view shows the latest version.
    assert_eq!(
        p.texts("SELECT amount::VARCHAR FROM main.bank WHERE id = 'T3' ORDER BY load_ts"),
        ["-60.25", "-62.25"]
    );
    assert_eq!(
        p.texts("SELECT amount::VARCHAR FROM main.tx WHERE hk IN (SELECT hk FROM vault.hub_tx WHERE business_key = 'T3')"),
        ["-62.25"]
    );
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 4);
}

#[test]
fn new_column_creates_a_new_satellite_and_keeps_the_hub() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    p.file(
        "in/bank/feb.csv",
        "id,Date,Amount,Memo,Category\nT4,2026-02-01,-3.20,Bus,transport\nT1,2026-01-01,-4.50,Coffee,food\n",
    );
    p.sync().code(0);
    let sats = p.satellites("bank");
    assert_eq!(sats.len(), 2, "{sats:?}");
    assert_eq!(p.int(&format!("SELECT count(*) FROM vault.{}", sats[0])), 3);
    assert_eq!(p.int(&format!("SELECT count(*) FROM vault.{}", sats[1])), 2);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 4);
    // The source view unions every version by name; old rows have no category.
    assert_eq!(
        p.int("SELECT count(*) FROM main.bank WHERE \"Category\" IS NULL"),
        3
    );
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 5);
    // The tag view still has one row per key.
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 4);
    // The same new shape again loads into the second satellite, not a third.
    p.file(
        "in/bank/mar.csv",
        "id,Date,Amount,Memo,Category\nT5,2026-03-01,-1.00,Gum,food\n",
    );
    p.sync().code(0);
    assert_eq!(p.satellites("bank").len(), 2);
    let out = p.run(&["schema", "bank", "--diff"]).code(0);
    assert!(out.stdout.contains("+ Category text"), "{}", out.stdout);
}

#[test]
fn retyped_column_creates_a_new_satellite() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    p.file(
        "in/bank/feb.csv",
        "id,Date,Amount,Memo,Qty\nT9,2026-02-01,1.00,x,3\n",
    );
    p.sync().code(0);
    p.file(
        "sources/bank.toml",
        format!(
            "{}\n[columns]\n\"Qty\" = \"integer\"\n",
            crate::common::BANK_SOURCE
        ),
    );
    p.file(
        "in/bank/mar.csv",
        "id,Date,Amount,Memo,Qty\nT10,2026-03-01,1.00,x,4\n",
    );
    p.sync().code(0);
    let sats = p.satellites("bank");
    assert_eq!(sats.len(), 3, "{sats:?}");
    assert_eq!(
        p.texts(&format!(
            "SELECT data_type FROM information_schema.columns WHERE table_name = '{}' AND column_name = 'Qty'",
            sats[2]
        )),
        ["BIGINT"]
    );
}

#[test]
fn dropped_tag_field_fails_check_and_sync_and_writes_nothing() {
    let p = Project::tx();
    p.file(
        "in/bank/jan.csv",
        "id,Date,Amnt,Memo\nT1,2026-01-01,-4.50,Coffee\n",
    );
    p.run(&["check"]).code(1).stdout_has(&[
        "bank",
        "tag `tx` field `amount`",
        "`Amount`",
        "closest column: `Amnt`",
    ]);
    p.sync().code(1).stderr_has(&[
        "source `bank`",
        "`Amount` is missing",
        "in/bank/jan.csv",
        "closest column: `Amnt`",
    ]);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 0);
    assert_eq!(p.int("SELECT count(*) FROM meta.satellites"), 0);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );
    // Reported and recorded alike, the source named once.
    assert_eq!(
        p.texts("SELECT DISTINCT status FROM meta.loads"),
        ["rejected"]
    );
    let out = p.sync().code(1);
    assert!(
        !out.stderr.contains("source `bank`: source"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("rejected"), "{}", out.stdout);
}

#[test]
fn a_source_that_loses_a_field_in_one_file_loads_none_of_its_files() {
    let p = Project::tx();
    p.file("in/bank/a.csv", BANK_V1);
    p.file("in/bank/b.csv", "id,Date,Memo\nT7,2026-01-09,x\n");
    p.sync().code(1);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 0);
}

#[test]
fn overlapping_exports_add_only_the_rows_not_seen() {
    let p = Project::tx();
    let rows: Vec<String> = (1..=15)
        .map(|i| format!("2026-01-{i:02},-{i}.00,shop {i}"))
        .collect();
    let export =
        |from: usize, to: usize| format!("Date,Amount,Memo\n{}\n", rows[from..to].join("\n"));
    p.file("in/card/export-1.csv", export(0, 10));
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), 10);
    p.file("in/card/export-2.csv", export(5, 15));
    let out = p.run(&["sync", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let card = doc["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == "card")
        .expect("card report");
    let units = card["units"].as_array().expect("units").clone();
    let loaded: Vec<_> = units.iter().filter(|u| u["status"] == "loaded").collect();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0]["counts"]["new_rows"], 5);
    assert_eq!(loaded[0]["counts"]["unchanged_rows"], 5);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), 15);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 15);
}

#[test]
fn identical_rows_under_a_content_key_stay_two_rows() {
    let p = Project::tx();
    let file = "Date,Amount,Memo\n2026-01-05,-3.10,Coffee\n2026-01-05,-3.10,Coffee\n2026-01-05,-3.1,Coffee\n";
    p.file("in/card/jan.csv", file);
    p.sync().code(0);
    // `-3.10` and `-3.1` are the same decimal, so all three are identical purchases.
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 3);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 3);
    assert_eq!(
        p.int("SELECT count(DISTINCT hashdiff) FROM main.card"),
        1,
        "one payload, three occurrences"
    );
    // The same export again, under another name, adds nothing.
    p.file("in/card/jan-copy.csv", file.replace("-3.1,", "-3.10,"));
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), 3);
    // A fourth identical purchase in a later export is a new row.
    p.file(
        "in/card/feb.csv",
        format!("{file}2026-01-05,-3.10,Coffee\n"),
    );
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), 4);
}

#[test]
fn malformed_csv_fails_only_its_own_unit() {
    let p = Project::tx();
    p.file("in/bank/good.csv", BANK_V1);
    p.file(
        "in/bank/ragged.csv",
        "id,Date,Amount,Memo\nT8,2026-01-08,-1.00,ok\nT9,2026-01-09,-2.00,too,many\n",
    );
    p.file(
        "in/card/c.csv",
        "Date,Amount,Memo\n2026-01-05,-3.10,Coffee\n",
    );
    p.sync().code(3).stderr_has(&[
        "source `bank`",
        "in/bank/ragged.csv",
        "line 3",
        "expected 4 fields",
    ]);
    // The good file and the other source loaded; nothing of the ragged file did.
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), 1);
    assert_eq!(
        p.int("SELECT count(*) FROM vault.hub_tx WHERE business_key = 'T8'"),
        0
    );
    assert_eq!(
        p.texts("SELECT status FROM meta.loads WHERE path LIKE '%ragged%'"),
        ["failed"]
    );
    // A failed unit is tried again on the next sync (it was never loaded).
    p.file(
        "in/bank/ragged.csv",
        "id,Date,Amount,Memo\nT8,2026-01-08,-1.00,ok\n",
    );
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 4);
}

#[test]
fn bad_value_rejects_the_unit_naming_file_line_column_and_value() {
    let p = Project::tx();
    p.file("in/bank/good.csv", BANK_V1);
    let mut big = String::from("id,Date,Amount,Memo\n");
    // Far past the first batch, so earlier batches were already staged when it fails.
    for i in 0..20_000 {
        big.push_str(&format!("B{i},2026-01-01,1.00,x\n"));
    }
    big.push_str("BX,2026-01-01,1O.00,x\n");
    p.file("in/bank/bad.csv", &big);
    p.sync().code(1).stderr_has(&[
        "source `bank`",
        "in/bank/bad.csv",
        "line 20002",
        "column `Amount`",
        "\"1O.00\"",
    ]);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 3);
    assert_eq!(
        p.texts("SELECT status FROM meta.loads WHERE path LIKE '%bad.csv'"),
        ["rejected"]
    );
    assert_eq!(
        p.int("SELECT rejected_rows FROM meta.loads WHERE path LIKE '%bad.csv'"),
        20_001
    );
}

#[test]
fn empty_required_value_rejects_the_unit() {
    let p = Project::tx();
    p.file("in/bank/a.csv", "id,Date,Amount,Memo\nT1,,1.00,x\n");
    p.sync()
        .code(1)
        .stderr_has(&["line 2", "column `Date`", "requires a value"]);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 0);
}

#[test]
fn dry_run_writes_nothing() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.run(&["sync", "--dry-run"])
        .code(0)
        .stdout_has(&["would_load", "in/bank/jan.csv"]);
    assert!(!p.path("ingestor.duckdb").exists());
    assert!(p.lake_files().is_empty());
    p.sync().code(0);
    p.file(
        "in/bank/feb.csv",
        "id,Date,Amount,Memo\nT9,2026-02-01,1.00,x\n",
    );
    p.run(&["sync", "--dry-run"])
        .code(0)
        .stdout_has(&["skipped", "would_load"]);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
    assert_eq!(p.lake_files().len(), 1);
}

#[test]
fn quiet_pipes_get_no_progress_output() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    let out = p.sync().code(0);
    assert_eq!(
        out.stderr, "",
        "a successful sync into a pipe prints no diagnostics"
    );
}

#[test]
fn european_csv_in_windows_1252_with_preamble() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/giro.toml",
        r#"tags = ["tx"]
primary_key = ["Ref"]
[fields]
date = "Buchungstag"
amount = "Betrag"
memo = "Text"
[reader]
type = "csv"
path = "in/giro.csv"
skip_rows = 2
encoding = "windows-1252"
decimal_separator = ","
thousands_separator = "."
date_format = "%d.%m.%Y"
"#,
    );
    let text =
        "Konto;123\r\n\r\nBuchungstag;Betrag;Text;Ref\r\n31.01.2026;-1.234,50;Miete Weiß;R1\r\n\
                01.02.2026;\"12,00\";\"Bäcker; Brötchen\";R2\r\n";
    p.file("in/giro.csv", encoding_rs::WINDOWS_1252.encode(text).0);
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT strftime(date, '%Y-%m-%d') || ' ' || amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date"),
        ["2026-01-31 -1234.50 Miete Weiß", "2026-02-01 12.00 Bäcker; Brötchen"]
    );
    assert_eq!(
        p.texts("SELECT \"row_number\"::VARCHAR FROM main.giro ORDER BY 1"),
        ["4", "5"]
    );
}

#[test]
fn a_killed_sync_leaves_no_trace_and_the_next_one_finishes_the_work() {
    // Whenever the kill lands (before, during or after a unit's transaction), the next
    // sync must end in the same vault as one uninterrupted run.
    let files: Vec<(String, String)> = (0..4)
        .map(|f| {
            (
                format!("in/bank/part-{f}.csv"),
                crate::common::bank_csv(f, 60_000),
            )
        })
        .collect();
    let setup = || {
        let p = Project::tx();
        for (name, body) in &files {
            p.file(name, body);
        }
        p
    };
    let fingerprint = |p: &Project| {
        p.texts(
            "SELECT (SELECT count(*) FROM vault.hub_tx)::VARCHAR || ' ' || \
                    (SELECT count(*) FROM main.bank)::VARCHAR || ' ' || \
                    (SELECT md5(string_agg(hk::VARCHAR || hashdiff::VARCHAR, ',' ORDER BY hk)) FROM main.bank) || ' ' || \
                    (SELECT count(*) FROM meta.files)::VARCHAR",
        )
    };
    let reference = setup();
    reference.sync().code(0);
    let want = fingerprint(&reference);
    for delay_ms in [150, 400, 900] {
        let p = setup();
        p.kill_sync_after(std::time::Duration::from_millis(delay_ms));
        p.sync().code(0);
        assert_eq!(fingerprint(&p), want, "after a kill at {delay_ms} ms");
        // The killed run is not left `running`, and DuckDB's spill folder is gone.
        assert_eq!(
            p.int("SELECT count(*) FROM meta.runs WHERE status = 'running'"),
            0,
            "after a kill at {delay_ms} ms"
        );
        assert!(!p.path("ingestor.duckdb.tmp").exists());
        // The lake's manifest was kept whole too: the lake alone gives the same vault.
        p.run(&["lake", "verify"]).code(0);
        std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
        p.run(&["rebuild"]).code(0);
        assert_eq!(
            fingerprint(&p),
            want,
            "rebuilt from the lake after a kill at {delay_ms} ms"
        );
    }
}

/// Sync with `--json`; the report of the unit at `path` of the first source.
fn synced_unit(p: &Project, path: &str) -> serde_json::Value {
    let out = p.run(&["sync", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let units = doc["sources"][0]["units"].as_array().expect("units");
    units
        .iter()
        .find(|u| u["path"] == path)
        .cloned()
        .unwrap_or_else(|| panic!("no unit {path} in {doc}"))
}

#[test]
fn a_key_given_twice_in_one_file_keeps_its_last_row() {
    let p = Project::tx();
    p.file(
        "in/bank/jan.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-4.50,first\nT2,2026-01-02,1.00,x\nT1,2026-01-01,-4.75,second\n",
    );
    let out = p.run(&["sync", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let counts = &doc["sources"][0]["units"][0]["counts"];
    assert_eq!(counts["duplicate_keys"], 1, "{counts}");
    assert_eq!(counts["new_rows"], 2, "{counts}");
    assert_eq!(
        p.texts("SELECT memo FROM main.tx ORDER BY memo"),
        ["second", "x"]
    );
    // Again on a satellite that has rows: T1's last row equals what is stored.
    p.file(
        "in/bank/feb.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-9.99,interim\nT3,2026-02-01,2.00,y\nT1,2026-01-01,-4.75,second\n",
    );
    let feb = synced_unit(&p, "in/bank/feb.csv");
    assert_eq!(feb["counts"]["new_rows"], 1, "{feb}");
    assert_eq!(feb["counts"]["changed_rows"], 0, "{feb}");
    assert_eq!(feb["counts"]["unchanged_rows"], 1, "{feb}");
    assert_eq!(p.int("SELECT count(*) FROM main.bank WHERE id = 'T1'"), 1);
}

#[test]
fn a_new_key_given_twice_next_to_known_keys_keeps_its_last_row() {
    // The satellite has rows, so the direct way compares with them; the repeat is of a
    // key new to it, which the direct way only learns of after the last batch.
    let p = Project::tx();
    p.file(
        "in/bank/jan.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,a\nT2,2026-01-02,2.00,b\n",
    );
    p.sync().code(0);
    p.file(
        "in/bank/feb.csv",
        "id,Date,Amount,Memo\nT9,2026-02-01,9.00,first\nT1,2026-01-01,1.00,a\nT9,2026-02-01,9.50,last\n",
    );
    let feb = synced_unit(&p, "in/bank/feb.csv");
    assert_eq!(feb["counts"]["duplicate_keys"], 1, "{feb}");
    assert_eq!(feb["counts"]["new_rows"], 1, "{feb}");
    assert_eq!(feb["counts"]["unchanged_rows"], 1, "{feb}");
    assert_eq!(
        p.texts("SELECT memo FROM main.bank WHERE id = 'T9'"),
        ["last"]
    );
}

/// A bank file of `n` rows keyed T0 to T{n-1}, then `tail` (whole lines).
fn many_rows(n: usize, tail: &str) -> String {
    let mut csv = String::with_capacity(n * 32 + tail.len() + 32);
    csv.push_str("id,Date,Amount,Memo\n");
    for i in 0..n {
        csv.push_str(&format!(
            "T{i},2026-01-01,{}.{:02},m{i}\n",
            i % 1000,
            i % 100
        ));
    }
    csv.push_str(tail);
    csv
}

/// More rows than the direct way moves in one statement, so one unit takes two.
const TWO_STATEMENTS: usize = ingestor::vault::writer::DIRECT_STATEMENT_ROWS + 50_000;

#[test]
fn a_file_larger_than_one_statement_loads_every_row_and_key_once() {
    let p = Project::tx();
    p.file("in/bank/big.csv", many_rows(TWO_STATEMENTS, ""));
    let unit = synced_unit(&p, "in/bank/big.csv");
    let n = TWO_STATEMENTS as i64;
    assert_eq!(unit["counts"]["new_rows"], n, "{unit}");
    assert_eq!(unit["counts"]["new_keys"], n, "{unit}");
    assert_eq!(p.int("SELECT count(DISTINCT hk) FROM vault.hub_tx"), n);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), n);
    let sat = &p.satellites("bank")[0];
    assert_eq!(
        p.int(&format!("SELECT count(DISTINCT hk) FROM vault.{sat}")),
        n
    );
    assert_eq!(p.int(&format!("SELECT count(*) FROM vault.{sat}")), n);
    // Every row keeps its own line, its key and its values.
    assert_eq!(
        p.int(&format!(
            "SELECT count(*) FROM vault.{sat} s JOIN vault.hub_tx h USING (hk) \
             WHERE h.business_key = s.id AND s.memo = 'm' || (s.row_number - 2) \
               AND s.id = 'T' || (s.row_number - 2)"
        )),
        n
    );
}

#[test]
fn a_key_repeated_after_the_first_statement_still_keeps_its_last_row() {
    // The direct way has moved a statement's rows when the repeat of T5 is noticed;
    // all of it is rolled back and the unit is loaded the staged way.
    let p = Project::tx();
    p.file(
        "in/bank/big.csv",
        many_rows(TWO_STATEMENTS, "T5,2026-02-02,7.77,last\n"),
    );
    let unit = synced_unit(&p, "in/bank/big.csv");
    assert_eq!(unit["counts"]["duplicate_keys"], 1, "{unit}");
    assert_eq!(unit["counts"]["new_rows"], TWO_STATEMENTS as i64, "{unit}");
    assert_eq!(
        p.int("SELECT count(*) FROM main.bank"),
        TWO_STATEMENTS as i64
    );
    assert_eq!(
        p.int("SELECT count(*) FROM vault.hub_tx"),
        TWO_STATEMENTS as i64
    );
    assert_eq!(
        p.texts("SELECT memo FROM main.bank WHERE id = 'T5'"),
        ["last"]
    );
}

#[test]
fn a_bad_value_after_the_first_statement_leaves_nothing_of_the_unit() {
    let p = Project::tx();
    p.file("in/bank/good.csv", BANK_V1);
    p.file(
        "in/bank/big.csv",
        many_rows(TWO_STATEMENTS, "TX,2026-01-01,1O.00,x\n"),
    );
    let line = (TWO_STATEMENTS + 2).to_string();
    p.sync().code(1).stderr_has(&[
        "in/bank/big.csv",
        &format!("line {line}"),
        "column `Amount`",
        "\"1O.00\"",
    ]);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 3);
    let sat = &p.satellites("bank")[0];
    assert_eq!(p.int(&format!("SELECT count(*) FROM vault.{sat}")), 3);
}

#[test]
fn an_unchanged_stat_skips_without_reading_but_a_rewrite_is_always_seen() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    let path = p.path("in/bank/jan.csv");
    let recorded = p.texts("SELECT path FROM meta.file_stats");
    assert_eq!(recorded, ["in/bank/jan.csv"]);
    // Touched, not changed: hashed again, still skipped, and remembered by its new stat.
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .expect("touch");
    drop(file);
    p.sync().code(0).stdout_has(&["skipped"]);
    // Rewritten with the same size and its old mtime put back: ctime still moves, so the
    // file is read and its change loaded.
    let before = std::fs::metadata(&path)
        .expect("stat")
        .modified()
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let changed = BANK_V1.replace("-60.25", "-61.25");
    assert_eq!(changed.len(), BANK_V1.len());
    std::fs::write(&path, &changed).expect("rewrite");
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_modified(before).expect("restore mtime");
    drop(file);
    let out = p.run(&["sync", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["sources"][0]["units"][0]["status"], "loaded");
    assert_eq!(doc["sources"][0]["units"][0]["counts"]["changed_rows"], 1);
}

#[test]
fn a_terminal_gets_a_progress_line() {
    // `script` (util-linux) runs the command on a pseudo-terminal.
    let Ok(script) = which("script") else {
        eprintln!("skipped: no `script` command for a pseudo-terminal");
        return;
    };
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    let bin = assert_cmd::cargo::cargo_bin("ingestor");
    let log = p.path("tty.log");
    let status = std::process::Command::new(script)
        .arg("-qc")
        .arg(format!(
            "{} -C {} sync",
            bin.display(),
            p.dir.path().display()
        ))
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script");
    assert!(status.success());
    let screen = String::from_utf8_lossy(&std::fs::read(&log).expect("log")).into_owned();
    assert!(screen.contains("bank in/bank/jan.csv:"), "{screen}");
    assert!(screen.contains(" rows, "), "{screen}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Issue 10: editing a source's definition left its files `skipped` while `check` failed.
#[test]
fn a_changed_definition_reloads_the_files_and_says_so() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    // A comment changes nothing that shapes the load.
    p.file(
        "sources/bank.toml",
        format!("# the giro account\n{}", crate::common::BANK_SOURCE),
    );
    p.sync().code(0).stdout_has(&["skipped    in/bank/jan.csv"]);
    // A reader option does: the file is loaded again, and nothing new is added.
    p.file(
        "sources/bank.toml",
        format!("{}decimal_separator = \".\"\n", crate::common::BANK_SOURCE),
    );
    let out = p.sync().code(0);
    assert!(
        out.stdout
            .contains("loaded     in/bank/jan.csv  (definition changed)  rows 3  new keys 0  new 0  changed 0  unchanged 3"),
        "{}",
        out.stdout
    );
    p.sync().code(0).stdout_has(&["skipped    in/bank/jan.csv"]);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
    // A mapping the file does not satisfy now fails sync as it fails check.
    p.file(
        "sources/bank.toml",
        crate::common::BANK_SOURCE.replace("amount = \"Amount\"", "amount = \"Betrag\""),
    );
    p.run(&["check"]).code(1);
    p.sync()
        .code(1)
        .stderr_has(&["`Betrag` is missing from `in/bank/jan.csv`"]);
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 3);
}

/// Issue 10: a run killed by Ctrl-C or SIGTERM stayed `running`, and DuckDB's spill
/// folder stayed beside the vault.
#[test]
fn the_next_sync_ends_a_dead_run_and_removes_what_it_left() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    // What a killed sync leaves: its run row, DuckDB's spill folder, a lake temp file.
    p.db()
        .execute_batch(
            "INSERT INTO meta.runs (run_id, command, started_at, status) \
             VALUES (2, 'sync', now(), 'running')",
        )
        .expect("a dead run");
    p.file("ingestor.duckdb.tmp/duckdb_temp_storage-0.tmp", b"spilled");
    let hash = blake3::hash(BANK_V1.as_bytes()).to_hex().to_string();
    let temp = p.path(&format!("lake/{}/.tmpAbC123", &hash[..2]));
    std::fs::write(&temp, b"half a copy").expect("temp");
    // Another process's copy in flight holds its temporary file locked: it stays.
    let in_flight = p.path(&format!("lake/{}/.tmpLive99", &hash[..2]));
    std::fs::write(&in_flight, b"being written").expect("temp");
    let writer = std::fs::File::options()
        .write(true)
        .open(&in_flight)
        .expect("open");
    writer.lock().expect("lock");
    p.sync().code(0);
    assert!(in_flight.exists(), "a locked temporary file was removed");
    drop(writer);
    assert_eq!(
        p.texts("SELECT status FROM meta.runs ORDER BY run_id"),
        ["ok", "interrupted", "ok"]
    );
    assert!(!p.path("ingestor.duckdb.tmp").exists());
    assert!(!temp.exists());
    p.run(&["runs"]).code(0).stdout_has(&["interrupted"]);
}

/// Issue 10: amounts as banks print them load as the numbers they are.
#[test]
fn amounts_with_currency_signs_and_banking_signs_load_exactly() {
    let p = Project::tx();
    p.file(
        "in/bank/mixed.csv",
        "id,Date,Amount,Memo\n\
         A,2026-01-01,11'373.94,swiss\n\
         B,2026-01-02,(12.00),parentheses\n\
         C,2026-01-03,\"€ -4.50\",euro sign\n\
         D,2026-01-04,1150.00-,trailing minus\n\
         E,2026-01-05,7.25 DR,debit\n\
         F,2026-01-06,CHF 3.10,code\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR FROM main.tx ORDER BY date"),
        ["11373.94", "-12.00", "-4.50", "-1150.00", "-7.25", "3.10"]
    );
    // The satellite keeps what the file said; the tag's typed field is the number.
    assert_eq!(
        p.texts("SELECT \"Memo\" FROM main.bank WHERE amount = -1150"),
        ["trailing minus"]
    );
}

/// Issue 10: an export with a total line, a repeated header and a trailer loads its data
/// rows only; one without a header loads under the names the source gives.
#[test]
fn exports_with_totals_trailers_and_no_header_load_their_data_rows() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/stmt.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Memo\"\n\
         [reader]\ntype = \"csv\"\npath = \"in/stmt\"\n\
         skip_rows_matching = ['^Total']\nend = '^Date downloaded'\n",
    );
    p.file(
        "in/stmt/jan.csv",
        "Date,Amount,Memo\n2026-01-02,-3.50,Coffee\nTotal,-3.50\nDate,Amount,Memo\n\
         2026-01-03,-4.75,Bus\nDate downloaded,2026-02-01\nAccount,DE00 1234\n",
    );
    p.file(
        "sources/app.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"day\"\namount = \"value\"\nmemo = \"what\"\n\
         [reader]\ntype = \"csv\"\npath = \"in/app\"\nheader = false\ncolumns = [\"day\", \"value\", \"what\"]\n",
    );
    p.file("in/app/log.csv", "2026-01-04,-1.00,Tea\n");
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date"),
        ["-3.50 Coffee", "-4.75 Bus", "-1.00 Tea"]
    );
    assert_eq!(
        p.texts("SELECT \"row_number\"::VARCHAR FROM main.stmt ORDER BY 1"),
        ["2", "5"]
    );
    // A pattern that is not one is a definition error naming the file and key.
    p.file(
        "sources/app.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"csv\"\npath = \"in/app\"\nend = '('\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["sources/app.toml", "end", "regular expression"]);
}

/// Issue 10: amounts in two columns, with a sign column, or of the other sign.
#[test]
fn derived_amounts_from_credit_and_debit_a_sign_column_or_negation() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    let source = |name: &str, amount: &str| {
        p.file(
            &format!("sources/{name}.toml"),
            format!(
                "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\nmemo = \"Memo\"\namount = {amount}\n\
                 [reader]\ntype = \"csv\"\npath = \"in/{name}\"\n"
            ),
        );
    };
    source("card", "{ credit = \"Deposits\", debit = \"Withdrawals\" }");
    source(
        "giro",
        "{ column = \"Betrag\", sign = \"S/H\", negative = [\"S\"] }",
    );
    source("app", "{ column = \"Amount\", negate = true }");
    p.file(
        "in/card/jan.csv",
        "Date,Memo,Deposits,Withdrawals\n2026-01-01,Salary,1500.00,\n2026-01-02,Coffee,,-3.50\n",
    );
    p.file(
        "in/giro/jan.csv",
        "Date,Memo,Betrag,S/H\n2026-01-03,Rent,800.00,S\n2026-01-04,Refund,20.00,H\n",
    );
    p.file(
        "in/app/jan.csv",
        "Date,Memo,Amount\n2026-01-05,Spent,12.25\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date"),
        [
            "1500.00 Salary",
            "-3.50 Coffee",
            "-800.00 Rent",
            "20.00 Refund",
            "-12.25 Spent"
        ]
    );
    // The satellites keep the columns as written, typed by the field; a debit column
    // that prints money out as negative numbers still subtracts it.
    assert_eq!(
        p.texts(
            "SELECT coalesce(\"Withdrawals\"::VARCHAR, 'NULL') FROM main.card ORDER BY \"Date\""
        ),
        ["NULL", "-3.50"]
    );
    assert_eq!(
        p.texts("SELECT \"S/H\" FROM main.giro ORDER BY \"Date\""),
        ["S", "H"]
    );
    // A row with neither credit nor debit has no amount: rejected, naming both columns.
    p.file(
        "in/card/feb.csv",
        "Date,Memo,Deposits,Withdrawals\n2026-02-01,Balance,,\n",
    );
    p.sync().code(1).stderr_has(&[
        "in/card/feb.csv",
        "line 2",
        "`Deposits` and `Withdrawals`",
        "needs one of them",
    ]);
    // A part missing from a file breaks the contract, naming the part.
    p.remove("in/card/feb.csv");
    p.file("in/card/mar.csv", "Date,Memo,Deposits\n2026-03-01,x,1.00\n");
    p.run(&["check", "card"])
        .code(1)
        .stdout_has(&["field `amount` (its debit), column `Withdrawals` is missing"]);
    // Options that mean nothing are a definition error naming the field.
    source("app", "{ column = \"Amount\", sign = \"S\" }");
    p.run(&["check", "app"])
        .code(2)
        .stderr_has(&["sources/app.toml", "fields.amount", "negative"]);
}

/// Issue 12: headers that differ only in case are two columns; bytes that are not UTF-8
/// under `encoding = "utf-8"` are an error, not replacement characters.
#[test]
fn case_twin_headers_load_and_explicit_utf8_is_strict() {
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo,text,TEXT\nT1,2026-01-01,1.00,x,a,b\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT \"text\" || \"TEXT_2\" FROM main.bank"),
        ["ab"]
    );
    p.file(
        "sources/bank.toml",
        format!("{}encoding = \"utf-8\"\n", crate::common::BANK_SOURCE),
    );
    p.file(
        "in/bank/b.csv",
        b"id,Date,Amount,Memo\nT2,2026-01-02,2.00,Caf\xe9\n",
    );
    p.sync()
        .code(3)
        .stderr_has(&["in/bank/b.csv", "line 2", "`Memo` is not valid UTF-8"]);
    assert_eq!(p.int("SELECT count(*) FROM main.bank WHERE id = 'T2'"), 0);
}

/// Issue 10: a card statement whose dates have no year (`16 Dez`) takes it from the
/// statement period in its preamble; a date far outside the period fails the file,
/// naming the line and the value, and loads nothing of it.
#[test]
fn dates_without_a_year_take_it_from_the_statement_period_in_the_preamble() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/card.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Datum\"\namount = \"Betrag\"\nmemo = \"Text\"\n\
         [reader]\ntype = \"csv\"\npath = \"in\"\nskip_rows = 3\nencoding = \"windows-1252\"\n\
         decimal_separator = \",\"\ndate_format = \"%d.%m.\"\n\
         period = 'Zeitraum:\";\"(?P<start>[\\d.]+)\";\"(?P<end>[\\d.]+)'\nperiod_format = \"%d.%m.%Y\"\n",
    );
    let statement = |period: &str, rows: &str| {
        let text = format!(
            "\"Kreditkarte:\";\"4711 ******** 1234\";\r\n\"Zeitraum:\";{period};\r\n\r\n\
             \"Datum\";\"Text\";\"Betrag\";\r\n{rows}"
        );
        encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
    };
    p.file(
        "in/2024-12.csv",
        statement(
            "\"15.12.2024\";\"14.01.2025\"",
            "\"12.12.\";\"Café, spät gebucht\";\"-9,99\";\r\n\"16.12.\";\"Bäckerei\";\"-3,50\";\r\n\
             \"03.01.\";\"Bahn\";\"-27,00\";\r\n",
        ),
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT strftime(date, '%Y-%m-%d') || ' ' || amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date"),
        [
            "2024-12-12 -9.99 Café, spät gebucht",
            "2024-12-16 -3.50 Bäckerei",
            "2025-01-03 -27.00 Bahn",
        ]
    );
    // June is months away from a December statement: no year is right for it.
    p.file(
        "in/2025-01.csv",
        statement(
            "\"15.01.2025\";\"14.02.2025\"",
            "\"16.01.\";\"Kino\";\"-12,00\";\r\n\"05.06.\";\"Tippfehler\";\"-1,00\";\r\n",
        ),
    );
    p.sync().code(1).stderr_has(&[
        "in/2025-01.csv",
        "line 6",
        "\"05.06.\"",
        "outside the statement period 2025-01-15 to 2025-02-14",
    ]);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 3);
    // A statement without the period line says where `period` was looked for.
    p.file(
        "in/2025-01.csv",
        statement("\"bald\"", "\"16.01.\";\"Kino\";\"-12,00\";\r\n"),
    );
    p.sync()
        .code(3)
        .stderr_has(&["`period` matches nothing in the 3 lines above the header"]);
    // `period` with nothing to look in is a definition error.
    p.file(
        "sources/card.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"csv\"\npath = \"in\"\ndate_format = \"%d.%m.\"\n\
         period = '(?P<end>.+)'\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["sources/card.toml", "period", "skip_rows"]);
}

/// Issue 10: a card export that flags credits only (`CR`) and leaves debits unflagged
/// (M&S Bank), signs in another case than the definition's, and `+ £` amounts.
#[test]
fn an_empty_sign_may_be_the_negative_one_and_signs_ignore_case() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/card.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\nmemo = \"Description\"\n\
         amount = { column = \"Amount\", sign = \"Flag\", negative = [\"\"] }\n\
         [reader]\ntype = \"csv\"\npath = \"in/card\"\ndate_format = \"%d-%b-%Y\"\n\
         thousands_separator = \",\"\nskip_rows_matching = ['^Pending']\n",
    );
    p.file(
        "sources/giro.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\nmemo = \"Memo\"\n\
         amount = { column = \"Bedrag\", sign = \"Af Bij\", negative = [\"Af\"] }\n\
         [reader]\ntype = \"csv\"\npath = \"in/giro\"\n",
    );
    p.file(
        "in/card/dec.csv",
        "Date,Description,Amount,Flag,\nPending,Coffee,£3.10,,\n\
         12-Dec-2019,Grocer,£67.40,,\n13-Dec-2019,Payment,\"+ £1,100.00\",CR,\n",
    );
    p.file(
        "in/giro/dec.csv",
        "Date,Memo,Bedrag,Af Bij\n2019-12-14,Rent,800.00,AF\n2019-12-15,Salary,2000.00,BIJ\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date"),
        [
            "-67.40 Grocer",
            "1100.00 Payment",
            "-800.00 Rent",
            "2000.00 Salary"
        ]
    );
    // With `positive`, a sign in neither list fails the file instead of counting as
    // positive: `Credit` is no `Bij`.
    p.file(
        "sources/giro.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\nmemo = \"Memo\"\n\
         amount = { column = \"Bedrag\", sign = \"Af Bij\", negative = [\"Af\"], positive = [\"Bij\"] }\n\
         [reader]\ntype = \"csv\"\npath = \"in/giro\"\n",
    );
    p.file(
        "in/giro/jan.csv",
        "Date,Memo,Bedrag,Af Bij\n2020-01-14,Rent,800.00,af\n2020-01-15,Refund,20.00,Credit\n",
    );
    p.sync().code(1).stderr_has(&[
        "in/giro/jan.csv",
        "line 3",
        "sign \"Credit\" is in neither `negative` [\"Af\"] nor `positive` [\"Bij\"]",
    ]);
    assert_eq!(
        p.int("SELECT count(*) FROM main.tx WHERE date >= '2020-01-01'"),
        0
    );
    // Spaces and tabs around a sign, a no-break space included, are trimmed alike by
    // the check and by the view: what the check lets through, the view signs right.
    p.file(
        "in/giro/jan.csv",
        "Date,Memo,Bedrag,Af Bij\n2020-01-14,Rent,800.00,\"Af\t\"\n\
         2020-01-15,Salary,2000.00,\"\u{a0}BIJ \"\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR || ' ' || memo FROM main.tx WHERE date >= '2020-01-01' ORDER BY date"),
        ["-800.00 Rent", "2000.00 Salary"]
    );
}

/// Issue 10: a Czech export in Windows-1250, whose letters Windows-1252 would turn into
/// others (`ě` is not in it), is read with the encoding the source names.
#[test]
fn a_windows_1250_export_reads_with_its_encoding() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/cz.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Datum zaúčtování\"\namount = \"Částka\"\nmemo = \"Poznámka\"\n\
         [reader]\ntype = \"csv\"\npath = \"in\"\nencoding = \"windows-1250\"\n\
         decimal_separator = \",\"\ndate_format = \"%d.%m.%Y\"\n",
    );
    let text =
        "Datum zaúčtování;Částka;Poznámka;\r\n02.05.2018;-111,11;Nákup potravin, Třebíč;\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1250.encode(text);
    assert!(!unmappable);
    p.file("in/pohyby.csv", bytes);
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR || ' ' || memo FROM main.tx"),
        ["-111.11 Nákup potravin, Třebíč"]
    );
    // A label that names no encoding is a definition error listing some that do.
    p.file(
        "sources/cz.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"csv\"\npath = \"in\"\nencoding = \"czech\"\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["sources/cz.toml", "encoding", "windows-1250"]);
}

/// Issue 10: an OCBC-shaped export (preamble, descriptions wrapped onto a second row,
/// withdrawals and deposits in two columns) loads one row per transaction.
#[test]
fn continuation_rows_join_the_transaction_above() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/ocbc.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Transaction date\"\nmemo = \"Description\"\n\
         amount = { credit = \"Deposits (SGD)\", debit = \"Withdrawals (SGD)\" }\n\
         [reader]\ntype = \"csv\"\npath = \"in\"\nskip_rows = 5\ndate_format = \"%d/%m/%Y\"\n\
         thousands_separator = \",\"\ncontinuation = \"Description\"\nnull_values = [\"-\"]\n",
    );
    p.file(
        "in/history.csv",
        "Account details for:,360 Account 123-456789-001\nAvailable Balance,\"6,666.66\"\n\
         Ledger Balance,\"6,666.66\"\n\nTransaction History \n\
         Transaction date,Value date,Description,Withdrawals (SGD),Deposits (SGD)\n\
         16/04/2018,16/04/2018,FAST PAYMENT,\"1,000.00\",-\n,,to ANNA TAN,,\n\
         17/04/2018,17/04/2018,SALARY,,\"5,432.10\"\n,,ACME PTE LTD,,\n,,APRIL,,\n\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT strftime(date, '%Y-%m-%d') || ' ' || amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date"),
        [
            "2018-04-16 -1000.00 FAST PAYMENT to ANNA TAN",
            "2018-04-17 5432.10 SALARY ACME PTE LTD APRIL",
        ]
    );
    assert_eq!(
        p.texts("SELECT \"row_number\"::VARCHAR FROM main.ocbc ORDER BY 1"),
        ["7", "9"]
    );
}

/// Issue 10: an export with one table per account, each under a line naming the account,
/// loads every table with its account as a column of the source.
#[test]
fn sections_make_the_line_above_each_table_a_column() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/accounts.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Memo\"\n\
         [reader]\ntype = \"csv\"\npath = \"in\"\nskip_rows = 1\n\
         sections = ['^Account: (?P<account>.+)$']\nskip_rows_matching = ['^Total']\n",
    );
    p.file(
        "in/all.csv",
        "Account: Giro 1234\nDate,Amount,Memo\n2026-01-02,-3.50,Coffee\nTotal,-3.50,\n\n\
         Account: Savings 9876\nDate,Amount,Memo\n2026-01-03,100.00,Interest\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT account || ' ' || \"Memo\" FROM main.accounts ORDER BY \"Date\""),
        ["Giro 1234 Coffee", "Savings 9876 Interest"]
    );
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 2);
}

/// Issue 10: Revolut's 2019 export writes this year's dates as `September 15` and
/// earlier ones as `2018 August 28` in one column: a list of formats reads both.
#[test]
fn a_list_of_date_formats_reads_a_column_that_mixes_them() {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/revolut.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Completed Date\"\nmemo = \"Reference\"\n\
         amount = { credit = \"Paid In (EUR)\", debit = \"Paid Out (EUR)\" }\n\
         [reader]\ntype = \"csv\"\npath = \"in\"\nthousands_separator = \",\"\n\
         date_format = [\"%B %d\", \"%Y %B %d\"]\nyear = 2019\n",
    );
    p.file(
        "in/statement.csv",
        "Completed Date ; Reference ; Paid Out (EUR) ; Paid In (EUR) ; Balance (EUR)\n\
         September 15 ; Coffee ; 3.50 ;  ; 1,792.49\n\
         2018 August 28 ; Top-up ;  ; 1,000.00 ; 1,795.99\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT strftime(date, '%Y-%m-%d') || ' ' || amount::VARCHAR FROM main.tx ORDER BY date"),
        ["2018-08-28 1000.00", "2019-09-15 -3.50"]
    );
    // An empty list is a definition error.
    p.file(
        "sources/revolut.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"csv\"\npath = \"in\"\ndate_format = []\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["sources/revolut.toml", "at least one format"]);
    // A list with a format without a year names it when neither `year` nor `period`
    // is given; a JSON source, which has neither, refuses such a format.
    p.file(
        "sources/revolut.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"csv\"\npath = \"in\"\n\
         date_format = [\"%B %d\", \"%Y %B %d\"]\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["sources/revolut.toml", "`%B %d` has no year"]);
    p.file(
        "sources/revolut.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"json\"\npath = \"in\"\ndate_format = [\"%d.%m.%Y\", \"%d.%m.\"]\n",
    );
    p.run(&["check"]).code(2).stderr_has(&[
        "sources/revolut.toml",
        "`%d.%m.` has no year, and this reader has no `year` or `period`",
    ]);
    p.file(
        "sources/revolut.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"csv\"\npath = \"in\"\ndate_format = 5\n",
    );
    p.run(&["check"]).code(2).stderr_has(&[
        "sources/revolut.toml",
        "`date_format`: expected a chrono format",
    ]);
}

/// Two derived fields that share one sign column are both held to their `positive`:
/// the contract keeps one part per column, the sign rules are kept per field.
#[test]
fn a_shared_sign_column_is_strict_for_every_field_that_uses_it() {
    let p = Project::new();
    p.file(
        "tags/tx.toml",
        "[fields]\ndate = { type = \"date\" }\namount = { type = \"decimal\" }\n\
         fee = { type = \"decimal\" }\n",
    );
    p.file(
        "sources/giro.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\n\
         amount = { column = \"Betrag\", sign = \"S/H\", negative = [\"S\"] }\n\
         fee = { column = \"Gebühr\", sign = \"S/H\", negative = [\"S\"], positive = [\"H\"] }\n\
         [reader]\ntype = \"csv\"\npath = \"in\"\n",
    );
    p.file(
        "in/jan.csv",
        "Date,Betrag,Gebühr,S/H\n2026-01-03,800.00,1.00,S\n2026-01-04,20.00,0.50,X\n",
    );
    p.sync().code(1).stderr_has(&[
        "in/jan.csv",
        "line 3",
        "sign \"X\" is in neither `negative` [\"S\"] nor `positive` [\"H\"] of field `fee`",
    ]);
}
