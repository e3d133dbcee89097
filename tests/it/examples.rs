//! The repository's own tags/, sources/ and data/ check and load cleanly.

use crate::common::Project;

/// Data lines of a CSV: lines minus preamble and header, blank lines ignored.
fn data_lines(bytes: &[u8], skip: usize) -> i64 {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .skip(skip + 1)
        .filter(|l| !l.trim().is_empty())
        .count() as i64
}

#[test]
fn every_shipped_definition_checks() {
    let p = Project::shipped();
    let out = p.run(&["check"]).code(0);
    for source in ["bank_giro", "card", "cash_book", "strong_app"] {
        assert!(
            out.stdout.contains(source),
            "{source} not checked:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("FAIL"));
}

#[test]
fn shipped_samples_load_with_every_row() {
    let p = Project::shipped();
    p.sync().code(0);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let read = |rel: &str| std::fs::read(root.join(rel)).expect("sample");
    let bank = data_lines(&read("bank/giro-2026-01.csv"), 4)
        + data_lines(&read("bank/giro-2026-02.csv"), 4);
    // The card sample has one line with a quoted newline-free comma field; every line is a row.
    let card = data_lines(&read("card/card-2026-01.csv"), 0);
    let workouts = data_lines(&read("workouts/workouts.csv"), 0);
    assert_eq!(p.int("SELECT count(*) FROM main.bank_giro"), bank);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), card);
    // The cash book: eight entries in tools/fixtures/excel/make_fixtures.py, under a two-line title.
    assert_eq!(p.int("SELECT count(*) FROM main.cash_book"), 8);
    assert_eq!(p.int("SELECT min(\"row_number\") FROM main.cash_book"), 5);
    assert_eq!(
        p.int("SELECT count(*) FROM main.transactions"),
        bank + card + 8
    );
    assert_eq!(p.int("SELECT count(*) FROM main.workouts"), workouts);
    assert_eq!(
        p.int("SELECT count(*) FROM vault.hub_transactions"),
        bank + card + 8
    );
    // The two identical card purchases are two rows.
    assert_eq!(
        p.int("SELECT count(*) FROM main.card GROUP BY hashdiff ORDER BY 1 DESC LIMIT 1"),
        2
    );
    // Windows-1252 text decoded, German amounts exact.
    assert!(p.int("SELECT count(*) FROM main.bank_giro WHERE \"Empfänger/Auftraggeber\" = 'Stadtwerke München'") > 0);
    assert_eq!(
        p.texts("SELECT typeof(\"Saldo (EUR)\") FROM main.bank_giro LIMIT 1"),
        ["DECIMAL(18,2)"]
    );
    // The running balance in the export agrees with the amounts, to the cent.
    let drift = p.int(
        "SELECT count(*) FROM (SELECT \"Saldo (EUR)\" - lag(\"Saldo (EUR)\") OVER (ORDER BY \"Transaktions-ID\") AS d, \
         \"Betrag (EUR)\" AS a FROM main.bank_giro) WHERE d IS NOT NULL AND d <> a",
    );
    assert_eq!(drift, 0);
}
