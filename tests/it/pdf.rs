//! PDF statements from several producers (tests/fixtures/pdf, made by make.py there),
//! compared row by row with the truth they were made from; receipts; encrypted, scanned
//! and truncated files.

use std::path::Path;

use crate::common::{simple_pdf, Project, TX_TAG};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pdf")
            .join(name),
    )
    .expect("fixture")
}

const STATEMENT: &str = r#"
tags = ["tx"]
[fields]
date = "Buchungstag"
amount = "Betrag"
memo = "Verwendungszweck"
[reader]
type = "pdf"
path = "in"
row = '(?P<Buchungstag>\d{2}\.\d{2}\.\d{4}) (?P<Verwendungszweck>.+?) (?P<Betrag>-?[\d.]+,\d{2}-?) (?P<Saldo>-?[\d.]+,\d{2}-?)'
continuation = "Verwendungszweck"
skip = ['^Seite \d+ von \d+$', '^Buchungstag', '^Neuer Kontostand', '^Musterbank', '^IBAN']
decimal_separator = ","
thousands_separator = "."
date_format = "%d.%m.%Y"
[columns]
Saldo = "decimal"
"#;

fn project(source: &str) -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file("sources/giro.toml", source);
    p
}

/// statement.csv as the rows the vault should hold: date, description, amount, balance,
/// page.
fn truth() -> Vec<String> {
    let text = String::from_utf8(fixture("statement.csv")).expect("utf-8");
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{}|{}|{}|{}|{}", f[0], f[1], f[2], f[3], f[4])
        })
        .collect()
}

/// The balance checks: every Saldo is the previous one plus its Betrag, and the opening
/// balance plus every Betrag is the closing one.
const CHECKS: &str = "amount = \"Betrag\"\nbalance = \"Saldo\"\n\
    opening = 'Alter Kontostand (?P<value>[\\d.]+,\\d{2}-?)'\n\
    closing = 'Neuer Kontostand (?P<value>[\\d.]+,\\d{2}-?)'\n";

const ROWS: &str = "SELECT strftime(\"Buchungstag\", '%d.%m.%Y') || '|' || \"Verwendungszweck\" || '|' || \
    \"Betrag\"::VARCHAR || '|' || \"Saldo\"::VARCHAR || '|' || \"_page\" FROM main.giro ORDER BY \"row_number\"";

#[test]
fn statements_from_three_producers_load_exactly_what_they_were_made_from() {
    let want = truth();
    assert_eq!(want.len(), 24);
    for producer in ["reportlab", "fpdf", "groff"] {
        let p = project(&STATEMENT.replace("[columns]", &format!("{CHECKS}[columns]")));
        let name = format!("statement-{producer}.pdf");
        p.file(&format!("in/{name}"), fixture(&name));
        let out = p.sync();
        assert_eq!(out.code, 0, "{producer}: {out:?}");
        assert_eq!(p.texts(ROWS), want, "{producer}");
        // The row's line over the whole document: page 2's rows count page 1's lines.
        let first_of_page_2: i64 =
            p.int("SELECT min(\"row_number\") FROM main.giro WHERE \"_page\" = '2'");
        assert!(first_of_page_2 > 20, "{producer}: {first_of_page_2}");
    }
}

#[test]
fn a_statement_with_restrictions_only_opens_and_a_password_comes_from_a_secret() {
    let p = project(&STATEMENT.replace(
        "date_format",
        "password_secret = \"statement_pw\"\ndate_format",
    ));
    p.file("in/a.pdf", fixture("statement-restricted.pdf"));
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.giro"), 24);
    p.file("in/b.pdf", fixture("statement-encrypted.pdf"));
    p.sync()
        .code(5)
        .stderr_has(&["`in/b.pdf`", "is encrypted", "INGESTOR_SECRET_STATEMENT_PW"]);
    let out = p
        .run_env(
            &["sync"],
            &[("INGESTOR_SECRET_STATEMENT_PW", "not-the-password")],
        )
        .code(3)
        .stderr_has(&[
            "`in/b.pdf`",
            "the password in secret `statement_pw` does not open it",
        ]);
    assert!(!out.stderr.contains("not-the-password"));
    p.run_env(
        &["sync"],
        &[("INGESTOR_SECRET_STATEMENT_PW", "kontoauszug-2026")],
    )
    .code(0);
    // The same rows again: the second statement adds nothing new.
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 24);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        2
    );
}

#[test]
fn a_scan_a_truncated_file_and_another_format_fail_by_name() {
    let p = project(STATEMENT);
    p.file("in/scan.pdf", fixture("scanned.pdf"));
    p.sync()
        .code(3)
        .stderr_has(&["`in/scan.pdf`", "no text layer (scanned?)"]);
    p.run(&["check"])
        .code(3)
        .stdout_has(&["no text layer (scanned?)"]);
    p.remove("in/scan.pdf");
    let whole = fixture("statement-fpdf.pdf");
    p.file("in/cut.pdf", &whole[..whole.len() / 3]);
    let out = p.sync().code(3);
    assert!(out.stderr.contains("`in/cut.pdf`"), "{out:?}");
    p.remove("in/cut.pdf");
    p.file("in/x.pdf", b"PK\x03\x04 not a pdf at all");
    p.sync()
        .code(3)
        .stderr_has(&["`in/x.pdf`", "not a PDF file"]);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );
}

#[test]
fn a_line_with_an_amount_that_matches_nothing_fails_naming_page_and_line() {
    // Without `continuation` and without the closing balance in `skip`.
    let source = STATEMENT
        .replace("continuation = \"Verwendungszweck\"\n", "")
        .replace(", '^Neuer Kontostand'", "");
    let p = project(&source);
    p.file("in/a.pdf", fixture("statement-groff.pdf"));
    p.sync().code(3).stderr_has(&[
        "`in/a.pdf`",
        "page 2 line 19: `Neuer Kontostand 21.749,71-` matches neither `row` nor `skip`",
    ]);
    let inspect = p.run(&["inspect", "in/a.pdf", "--source", "giro"]).code(0);
    assert!(
        inspect
            .stdout
            .lines()
            .any(|l| l.contains("LOST") && l.contains("Neuer Kontostand")),
        "{}",
        inspect.stdout
    );
}

#[test]
fn a_receipt_with_euro_signs_loads_its_amounts() {
    let source = r#"
tags = ["tx"]
[fields]
date = "date"
amount = "amount"
memo = "item"
[reader]
type = "pdf"
path = "in"
row = '(?P<date>\d{4}-\d{2}-\d{2}) (?P<item>.+) (?P<amount>[\d,]+) €'
skip = ['^Summe']
decimal_separator = ","
"#;
    let p = project(source);
    p.file("in/receipt.pdf", fixture("receipt.pdf"));
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["6.20"]
    );
    assert_eq!(
        p.texts("SELECT memo FROM main.tx ORDER BY memo"),
        ["Cappuccino", "Croissant"]
    );
}

#[test]
fn check_names_a_field_mapped_to_a_group_the_row_does_not_have() {
    let p = project(&STATEMENT.replace("memo = \"Verwendungszweck\"", "memo = \"Text\""));
    p.file("in/a.pdf", fixture("statement-fpdf.pdf"));
    p.run(&["check"]).code(1).stdout_has(&["Text"]);
}

#[test]
fn a_balance_that_does_not_add_up_fails_naming_the_first_row_that_breaks() {
    let source = r#"
tags = ["tx"]
[fields]
date = "d"
amount = "a"
memo = "m"
[reader]
type = "pdf"
path = "in"
row = '(?P<d>\d{4}-\d{2}-\d{2}) (?P<m>.+?) (?P<a>-?[\d.]+) (?P<b>-?[\d.]+)'
skip = ['^Closing']
amount = "a"
balance = "b"
opening = 'Opening (-?[\d.]+)'
closing = 'Closing (?P<value>-?[\d.]+)'
"#;
    let font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";
    let p = project(source);
    // A row between the second and the third was lost (or misread): 90.00 - 5.00 is not 80.00.
    p.file(
        "in/a.pdf",
        simple_pdf(
            &[
                "Opening 100.00",
                "2026-01-01 Coffee -4.50 95.50",
                "2026-01-02 Book -5.50 90.00",
                "2026-01-04 Lunch -5.00 80.00",
                "Closing 80.00",
            ],
            font,
        ),
    );
    p.sync().code(3).stderr_has(&[
        "`in/a.pdf`",
        "page 1 line 4: the balance 80.00 is not the previous balance 90.00 plus the amount -5.00 (that is 85.00)",
    ]);
    // Every running balance adds up, but the closing line does not.
    p.file(
        "in/a.pdf",
        simple_pdf(
            &[
                "Opening 100.00",
                "2026-01-01 Coffee -4.50 95.50",
                "2026-01-02 Book -5.50 90.00",
                "Closing 91.00",
            ],
            font,
        ),
    );
    p.sync().code(3).stderr_has(&[
        "the closing balance 91.00 is not the opening balance 100.00 plus the 2 amounts (90.00)",
    ]);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );
}
