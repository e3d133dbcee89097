//! PDF statements from several producers (tests/fixtures/pdf, made by tools/fixtures/pdf/make.py),
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
fn statements_from_five_producers_load_exactly_what_they_were_made_from() {
    let want = truth();
    assert_eq!(want.len(), 24);
    for producer in ["reportlab", "fpdf", "groff", "libreoffice", "chromium"] {
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

/// The text of every line `inspect` prints for `bytes`.
fn extracted(bytes: &[u8]) -> Vec<String> {
    let p = Project::new();
    p.file("a.pdf", bytes);
    let out = p.run(&["inspect", "a.pdf"]).code(0);
    out.stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
        .collect()
}

const F1: &str =
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";

/// A page whose resources are `resources` and whose content is `content`, with more
/// objects from number 5 on.
fn page_pdf(page_extra: &str, resources: &str, content: &[u8], more: &[Vec<u8>]) -> Vec<u8> {
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] {page_extra} \
             /Resources {resources} /Contents 4 0 R >>"
        )
        .into_bytes(),
        crate::common::stream("", content),
    ];
    objects.extend(more.iter().cloned());
    crate::common::build_pdf(&objects)
}

#[test]
fn form_xobjects_tj_gaps_fake_bold_and_filter_chains_are_read() {
    // Text inside a Form XObject, placed by the page's `cm` and the form's /Matrix.
    let form = crate::common::stream(
        "/Type /XObject /Subtype /Form /BBox [0 0 500 100] /Matrix [1 0 0 1 0 10] \
         /Resources << /Font << /F1 6 0 R >> >>",
        b"BT /F1 10 Tf 0 0 Td (Inside the form) Tj ET",
    );
    let bytes = page_pdf(
        "",
        "<< /XObject << /X1 5 0 R >> /Font << /F1 6 0 R >> >>",
        b"BT /F1 10 Tf 50 700 Td (Above) Tj ET q 1 0 0 1 50 600 cm /X1 Do Q",
        &[form, F1.as_bytes().to_vec()],
    );
    assert_eq!(extracted(&bytes), ["Above", "Inside the form"]);

    // TJ: a large negative offset is a gap between words, a small one is kerning; the
    // same line drawn twice, a third of a point apart, is one line (fake bold).
    let content = b"BT /F1 10 Tf 50 700 Td [(2026-01-02)-3000(Cof)15(fee)-4000(-3.50)] TJ ET \
                    BT /F1 10 Tf 50.3 700 Td [(2026-01-02)-3000(Cof)15(fee)-4000(-3.50)] TJ ET";
    let bytes = page_pdf(
        "",
        "<< /Font << /F1 5 0 R >> >>",
        content,
        &[F1.as_bytes().to_vec()],
    );
    assert_eq!(extracted(&bytes), ["2026-01-02 Coffee -3.50"]);

    // The content stream zlib-compressed, then hex-encoded: a chain of two filters.
    use std::io::Write as _;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(b"BT /F1 10 Tf 50 700 Td (Filtered twice) Tj ET")
        .expect("zlib");
    let hex: String = z
        .finish()
        .expect("zlib")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_vec(),
        crate::common::stream("/Filter [/ASCIIHexDecode /FlateDecode]", format!("{hex}>").as_bytes()),
    ];
    objects.push(F1.as_bytes().to_vec());
    assert_eq!(
        extracted(&crate::common::build_pdf(&objects)),
        ["Filtered twice"]
    );
}

#[test]
fn a_rotated_page_reads_upright() {
    // A landscape statement: the page is turned by /Rotate 90, the text drawn along +y.
    // Turned clockwise, user space x grows downwards on the screen.
    let content = b"BT /F1 10 Tf 0 1 -1 0 280 100 Tm (First line) Tj ET \
                    BT /F1 10 Tf 0 1 -1 0 300 100 Tm (Second line) Tj ET";
    let bytes = page_pdf(
        "/Rotate 90",
        "<< /Font << /F1 5 0 R >> >>",
        content,
        &[F1.as_bytes().to_vec()],
    );
    assert_eq!(extracted(&bytes), ["First line", "Second line"]);
}

#[test]
fn type3_fonts_to_unicode_ligatures_and_fonts_sharing_a_subset_name() {
    // A Type3 font: its codes are named by /Differences, its widths in its FontMatrix.
    let type3 = "<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] \
                 /FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << /A 7 0 R /B 7 0 R >> \
                 /Encoding << /Type /Encoding /Differences [65 /A /B] >> \
                 /FirstChar 65 /LastChar 66 /Widths [600 600] /Resources << >> >>";
    // Two fonts with the same subset name but different ToUnicode maps, one mapping a
    // code to the ligature fi.
    let to_unicode = |pairs: &str| {
        crate::common::stream(
            "",
            format!(
                "/CIDInit /ProcSet findresource begin 12 dict begin begincmap \
                 1 begincodespacerange <00> <FF> endcodespacerange \
                 2 beginbfchar {pairs} endbfchar endcmap CMapName currentdict /CMap defineresource pop end end"
            )
            .as_bytes(),
        )
    };
    let subset = |cmap: u32| {
        format!(
            "<< /Type /Font /Subtype /TrueType /BaseFont /ABCDEF+Sans /FirstChar 1 \
             /LastChar 2 /Widths [500 500] /ToUnicode {cmap} 0 R >>"
        )
        .into_bytes()
    };
    let content = b"BT /T3 10 Tf 50 700 Td (AB BA) Tj ET \
                    BT /S1 10 Tf 50 680 Td (\x01\x02) Tj ET \
                    BT /S2 10 Tf 50 660 Td (\x01\x02) Tj ET";
    let bytes = page_pdf(
        "",
        "<< /Font << /T3 5 0 R /S1 6 0 R /S2 8 0 R >> >>",
        content,
        &[
            type3.as_bytes().to_vec(),
            subset(9),
            crate::common::stream("", b"0 0 d0"),
            subset(10),
            to_unicode("<01> <FB01> <02> <006E>"),
            to_unicode("<01> <0078> <02> <0079>"),
        ],
    );
    assert_eq!(extracted(&bytes), ["AB BA", "fin", "xy"]);
}

#[test]
fn differences_name_glyphs_and_an_unknown_name_is_never_guessed() {
    let font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica \
                /Encoding << /Type /Encoding /BaseEncoding /WinAnsiEncoding \
                /Differences [1 /uni20AC /g123 /fi] >> >>";
    let bytes = page_pdf(
        "",
        "<< /Font << /F1 5 0 R >> >>",
        b"BT /F1 10 Tf 50 700 Td (Preis 5 \x01) Tj ET BT /F1 10 Tf 50 680 Td (\x03nal \x02) Tj ET",
        &[font.as_bytes().to_vec()],
    );
    assert_eq!(extracted(&bytes), ["Preis 5 €", "final \u{FFFD}"]);
    // A sync fails on the unmapped glyph, naming the page, the line and the font.
    let p = project(
        "tags = [\"tx\"]\n[fields]\ndate = \"d\"\namount = \"a\"\nmemo = \"m\"\n[reader]\n\
         type = \"pdf\"\npath = \"in\"\nrow = '(?P<d>x) (?P<a>y) (?P<m>z)'\n",
    );
    p.file("in/a.pdf", &bytes);
    p.sync()
        .code(3)
        .stderr_has(&["page 1 line 2: glyphs of font `F1` (Helvetica) have no Unicode mapping"]);
}

#[test]
fn pages_limits_the_rows_to_those_pages() {
    let p = project(&STATEMENT.replace("date_format", "pages = \"2-\"\ndate_format"));
    p.file("in/a.pdf", fixture("statement-chromium.pdf"));
    p.sync().code(0);
    assert_eq!(p.texts("SELECT DISTINCT \"_page\" FROM main.giro"), ["2"]);
    assert_eq!(p.int("SELECT count(*) FROM main.giro"), 12);
}

#[test]
fn text_state_operators_move_and_space_text_as_pdf_says() {
    let content = b"BT /F1 10 Tf 12 TL 50 700 Td (Line one) Tj T* (Line two) Tj (Line three) ' \
                    1 0.2 (Line four) \" 0 Tc 0 Tw ET \
                    BT /F1 10 Tf 50 600 Td 0 -12 TD (Line five) Tj T* (Line six) Tj ET \
                    BT /F1 10 Tf 200 Tz 50 500 Td (Wide) Tj 100 Tz ( text) Tj ET \
                    BT /F1 10 Tf 0.5 Tc 50 480 Td (Tight) Tj 0 Tc 0 -14 Td (Normal) Tj ET";
    let bytes = page_pdf(
        "",
        "<< /Font << /F1 5 0 R >> >>",
        content,
        &[F1.as_bytes().to_vec()],
    );
    assert_eq!(
        extracted(&bytes),
        [
            "Line one",
            "Line two",
            "Line three",
            "Line four",
            "Line five",
            "Line six",
            "Wide text",
            "Tight",
            "Normal"
        ]
    );
}

#[test]
fn a_form_that_draws_itself_is_drawn_once_and_inherits_the_font() {
    // Form X1 draws its text with the page's font (no Tf of its own), then draws itself
    // a thousand times.
    let mut content = b"BT (Inside) Tj ET".to_vec();
    for _ in 0..1000 {
        content.extend_from_slice(b" /X1 Do");
    }
    let form = crate::common::stream(
        "/Type /XObject /Subtype /Form /BBox [0 0 500 100] /Resources << /XObject << /X1 5 0 R >> >>",
        &content,
    );
    let bytes = page_pdf(
        "",
        "<< /XObject << /X1 5 0 R >> /Font << /F1 6 0 R >> >>",
        b"BT /F1 10 Tf ET q 1 0 0 1 50 600 cm BT /F1 10 Tf ET /F1 10 Tf /X1 Do Q",
        &[form, F1.as_bytes().to_vec()],
    );
    assert_eq!(extracted(&bytes), ["Inside"]);
}

/// Issue 10: a card statement printing `16 Dec` takes the year from the period it
/// states; a statement date alone (`end`) stands for the year up to it.
#[test]
fn dates_without_a_year_take_it_from_the_statement_period_in_the_text() {
    let font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";
    let source = |period: &str| {
        format!(
            "tags = [\"tx\"]\n[fields]\ndate = \"d\"\namount = \"a\"\nmemo = \"m\"\n\
             [reader]\ntype = \"pdf\"\npath = \"in\"\n\
             row = '(?P<d>\\d\\d [A-Z][a-z]{{2}}) (?P<m>.+?) (?P<a>-?[\\d.]+)'\n\
             date_format = \"%d %b\"\n{period}\n"
        )
    };
    let p = project(&source(
        "period = 'Statement period (?P<start>\\d\\d \\w+ \\d{4}) to (?P<end>\\d\\d \\w+ \\d{4})'\n\
         period_format = \"%d %B %Y\"",
    ));
    let lines = [
        "Visa Classic",
        "Statement period 15 December 2024 to 14 January 2025",
        "12 Dec Booked late -9.99",
        "16 Dec Coffee -3.50",
        "03 Jan Train -27.00",
    ];
    p.file("in/dec.pdf", simple_pdf(&lines, font));
    p.sync().code(0);
    let loaded = || {
        p.texts("SELECT strftime(date, '%Y-%m-%d') || ' ' || amount::VARCHAR FROM main.tx ORDER BY date")
    };
    assert_eq!(
        loaded(),
        ["2024-12-12 -9.99", "2024-12-16 -3.50", "2025-01-03 -27.00"]
    );
    // The same statement read by its statement date only.
    let p = project(&source(
        "period = 'Statement period .* to (?P<end>\\d\\d \\w+ \\d{4})'\nperiod_format = \"%d %B %Y\"",
    ));
    p.file("in/dec.pdf", simple_pdf(&lines, font));
    p.sync().code(0);
    assert_eq!(
        loaded(),
        ["2024-12-12 -9.99", "2024-12-16 -3.50", "2025-01-03 -27.00"]
    );
    // `year` and `period` together are a definition error.
    p.file(
        "sources/giro.toml",
        source("year = 2024\nperiod = '(?P<end>\\d{4}-\\d\\d-\\d\\d)'"),
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["sources/giro.toml", "`year` or `period`, not both"]);
}
