//! Reader conformance: every reader through the same cases, so that all of them treat a
//! user's files alike.
//!
//! Each reader is one `ReaderCase` in `READERS`: the `[reader]` options of a source `src`
//! reading the folder `in/`, the ending of its files, the bytes of each case and what a
//! user should get from them. A new reader (PDF, JSON, an API) joins by adding one entry
//! to `READERS`; every test here then runs it, and a failure names the reader and the case.
//!
//! The cases: `normal`, a small valid file with the columns Date, Amount and Description;
//! `empty`, 0 bytes; `header_only`, column names and no rows (an empty export, loaded with
//! 0 rows); `truncated`, a valid file cut short; `not_this_format`, another format's bytes
//! under this reader's ending; `wrong_encoding`, text in a legacy encoding (what that means
//! for a reader is said at its entry). Every case but `normal` is synced after a good file
//! of the same source was loaded: a unit that fails must leave the vault as it was.

use crate::common::{simple_pdf, Out, Project, TX_TAG};

/// What a user should get from one case.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Exit 0: the unit is loaded with `rows` rows, one of them with this memo if given.
    Loads {
        rows: i64,
        memo: Option<&'static str>,
    },
    /// The run exits `code` (1: the unit is rejected, 3: it failed) naming the source and
    /// the file, its error says `says`, and nothing of the unit lands.
    Fails { code: i32, says: &'static str },
}

/// One case of one reader: the file's bytes and what a user should get.
struct Case {
    bytes: fn() -> Vec<u8>,
    want: Want,
}

const fn loads(bytes: fn() -> Vec<u8>, rows: i64, memo: Option<&'static str>) -> Case {
    Case {
        bytes,
        want: Want::Loads { rows, memo },
    }
}

const fn fails(bytes: fn() -> Vec<u8>, code: i32, says: &'static str) -> Case {
    Case {
        bytes,
        want: Want::Fails { code, says },
    }
}

/// A reader, as the suite runs it.
struct ReaderCase {
    /// Its `type`, as failures name it.
    name: &'static str,
    /// The `[reader]` options of a source reading the folder `in/`.
    reader: &'static str,
    /// The ending of its files.
    ext: &'static str,
    /// A valid file with the columns Date, Amount and Description (it may have more).
    normal: fn() -> Vec<u8>,
    /// The normal file's amounts in date order, as the tag's decimal shows them.
    amounts: &'static [&'static str],
    /// Each row's provenance (`row_number`) in file order: the line, or the sheet row.
    row_numbers: &'static [&'static str],
    empty: Case,
    header_only: Case,
    truncated: Case,
    not_this_format: Case,
    wrong_encoding: Case,
}

impl ReaderCase {
    fn case(&self, name: &str) -> &Case {
        match name {
            "empty" => &self.empty,
            "header_only" => &self.header_only,
            "truncated" => &self.truncated,
            "not_this_format" => &self.not_this_format,
            "wrong_encoding" => &self.wrong_encoding,
            _ => panic!("no case `{name}`"),
        }
    }
}

const NOT_XLSX: &str = "not a readable xlsx workbook";

/// Every reader. A new reader joins with one entry here.
const READERS: &[ReaderCase] = &[
    ReaderCase {
        name: "csv",
        reader: "type = \"csv\"\npath = \"in\"",
        ext: "csv",
        normal: csv_normal,
        amounts: &["-3.50", "-4.75", "-6.00"],
        row_numbers: &["2", "3", "4"],
        empty: fails(no_bytes, 3, "has no header row"),
        header_only: loads(csv_header_only, 0, None),
        // The last row stops after its date: one field where the header has three.
        truncated: fails(
            csv_truncated,
            3,
            "line 4: expected 3 fields like the header, found 1",
        ),
        // Binary bytes named .csv: refused as not text (a NUL byte), not read as a
        // one-column table that then lacks the tag's fields.
        not_this_format: fails(png_bytes, 3, "is not text"),
        // Wrong encoding for CSV: Windows-1252 bytes and no `encoding` option. A value that
        // is not UTF-8 falls back to Windows-1252, value by value, so the memo is `Café`.
        wrong_encoding: loads(cp1252_csv, 2, Some("Café")),
    },
    ReaderCase {
        name: "excel",
        reader: "type = \"excel\"\npath = \"in\"",
        ext: "xlsx",
        normal: xlsx_normal,
        amounts: &["-3.50", "-4.75", "-6.00", "-7.25", "-8.50", "-9.75", "7.00"],
        row_numbers: &["4", "5", "6", "7", "8", "9", "10"],
        empty: fails(no_bytes, 3, NOT_XLSX),
        header_only: loads(xlsx_header_only, 0, None),
        truncated: fails(xlsx_truncated, 3, NOT_XLSX),
        not_this_format: fails(png_bytes, 3, NOT_XLSX),
        // Wrong encoding for Excel: an xlsx is zipped XML, always Unicode, so no legacy
        // encoding can hide in one (an .xls names its code page, which calamine applies).
        // What reaches the reader is text in a legacy encoding under a workbook's name:
        // the Windows-1252 CSV named .xlsx.
        wrong_encoding: fails(cp1252_csv, 3, NOT_XLSX),
    },
    ReaderCase {
        name: "json",
        reader: "type = \"json\"\npath = \"in\"\nrecords = \"/transactions\"",
        ext: "json",
        normal: json_normal,
        amounts: &["-3.50", "-4.75", "-6.00"],
        // Records counted over the file.
        row_numbers: &["1", "2", "3"],
        empty: fails(no_bytes, 3, "the document ends where a value was expected"),
        // An export with no transactions: the array is empty; no columns, no rows.
        header_only: loads(json_header_only, 0, None),
        truncated: fails(json_truncated, 3, "cut short"),
        not_this_format: fails(png_bytes, 3, "expected a value, found byte 0x89"),
        // JSON is UTF-8 (RFC 8259): Windows-1252 bytes in a string are refused, naming
        // the place, rather than guessed.
        wrong_encoding: fails(
            cp1252_json,
            3,
            "line 4: column 59: a string that is not valid UTF-8",
        ),
    },
    ReaderCase {
        name: "pdf",
        reader: "type = \"pdf\"\npath = \"in\"\n\
                 row = '(?P<Date>\\d{4}-\\d{2}-\\d{2}) (?P<Amount>-?\\d+\\.\\d{2}) (?P<Description>.+)'",
        ext: "pdf",
        normal: pdf_normal,
        amounts: &["-3.50", "-4.75", "-6.00"],
        // Lines counted over the document: line 1 is the head.
        row_numbers: &["2", "3", "4"],
        empty: fails(no_bytes, 3, "not a PDF file"),
        // A statement of a month without bookings: the head and no rows.
        header_only: loads(pdf_header_only, 0, None),
        truncated: fails(pdf_truncated, 3, "a damaged PDF"),
        not_this_format: fails(png_bytes, 3, "not a PDF file"),
        // Wrong encoding for a PDF: a font whose codes map to no Unicode (a symbolic font
        // without ToUnicode): refused, naming page, line and font, never guessed.
        wrong_encoding: fails(
            pdf_unmapped,
            3,
            "page 1 line 1: glyphs of font `F1` (Symbolic) have no Unicode mapping",
        ),
    },
];

const HELVETICA: &str =
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";

fn pdf_normal() -> Vec<u8> {
    simple_pdf(
        &[
            "Date Amount Description",
            "2026-01-02 -3.50 Coffee",
            "2026-01-03 -4.75 Groceries",
            "2026-01-04 -6.00 Bookshop",
        ],
        HELVETICA,
    )
}

fn pdf_header_only() -> Vec<u8> {
    simple_pdf(&["Date Amount Description"], HELVETICA)
}

/// The normal file cut in its content stream: the objects after it and the xref are gone.
fn pdf_truncated() -> Vec<u8> {
    let whole = pdf_normal();
    let cut = whole
        .windows(6)
        .position(|w| w == b"Coffee")
        .expect("the first row");
    whole[..cut].to_vec()
}

/// A symbolic TrueType font with neither ToUnicode nor an encoding: its codes are glyph
/// numbers of a font program that is not there.
fn pdf_unmapped() -> Vec<u8> {
    simple_pdf(
        &["Date Amount Description", "2026-01-02 -3.50 Coffee"],
        "<< /Type /Font /Subtype /TrueType /BaseFont /Symbolic \
         /FontDescriptor << /Type /FontDescriptor /FontName /Symbolic /Flags 4 >> >>",
    )
}

const JSON_NORMAL: &str = r#"{"account": "DE89 3704",
 "transactions": [
  {"Date": "2026-01-02", "Amount": -3.50, "Description": "Coffee", "meta": {"ref": "A1"}},
  {"Date": "2026-01-03", "Amount": -4.75, "Description": "Groceries", "meta": {"ref": "A2"}},
  {"Date": "2026-01-04", "Amount": -6.00, "Description": "Bookshop", "meta": {"ref": "A3"}}
 ]}
"#;

fn json_normal() -> Vec<u8> {
    JSON_NORMAL.into()
}

fn json_header_only() -> Vec<u8> {
    br#"{"account": "DE89 3704", "transactions": []}"#.to_vec()
}

/// The normal file cut inside its last record.
fn json_truncated() -> Vec<u8> {
    let cut = JSON_NORMAL.find("Bookshop").expect("the last record");
    JSON_NORMAL.as_bytes()[..cut].to_vec()
}

/// The normal file with one memo in Windows-1252: `Café` with the byte 0xE9.
fn cp1252_json() -> Vec<u8> {
    let (before, after) = JSON_NORMAL.split_once("Groceries").expect("a memo");
    [before.as_bytes(), b"Caf\xe9", after.as_bytes()].concat()
}

/// No bytes at all: a download that failed, a file created and never written.
fn no_bytes() -> Vec<u8> {
    Vec::new()
}

const CSV_NORMAL: &str = "Date,Amount,Description\n\
    2026-01-02,-3.50,Coffee\n\
    2026-01-03,-4.75,Groceries\n\
    2026-01-04,-6.00,Bookshop\n";

fn csv_normal() -> Vec<u8> {
    CSV_NORMAL.into()
}

fn csv_header_only() -> Vec<u8> {
    b"Date,Amount,Description\n".to_vec()
}

/// The normal file cut in the middle of its last row, right after the date.
fn csv_truncated() -> Vec<u8> {
    let cut = CSV_NORMAL.find("2026-01-04").expect("the last row") + "2026-01-04".len();
    CSV_NORMAL.as_bytes()[..cut].to_vec()
}

/// Windows-1252, as older bank exports are: the `é` of `Café` is the byte 0xE9, not UTF-8.
fn cp1252_csv() -> Vec<u8> {
    b"Date,Amount,Description\n2026-01-02,-3.50,Caf\xe9\n2026-01-03,-4.75,Groceries\n".to_vec()
}

/// A PNG's signature and the start of its header chunk, then bytes of no format (a fixed
/// xorshift run, the same on every run).
fn png_bytes() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let mut x: u32 = 0x2545_F491;
    bytes.extend((0..4096).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x.to_le_bytes()[3]
    }));
    bytes
}

fn fixture(name: &str) -> Vec<u8> {
    crate::common::excel_fixture(name)
}

/// Written by LibreOffice: sheet `January` has a title, a blank row, the header in row 3
/// and 7 rows below it (tests/fixtures/excel/README.md).
fn xlsx_normal() -> Vec<u8> {
    fixture("statement.xlsx")
}

/// The first 3000 bytes of statement.xlsx: the zip's directory at its end is gone.
fn xlsx_truncated() -> Vec<u8> {
    fixture("truncated.xlsx")
}

/// A workbook whose one sheet holds the header Date, Amount, Description and no rows:
/// the parts of an xlsx package, zipped here, since no fixture has a table without rows.
fn xlsx_header_only() -> Vec<u8> {
    crate::common::xlsx_with_rows(&[(
        1,
        false,
        &[("A", "Date"), ("B", "Amount"), ("C", "Description")],
    )])
}

/// A project with tag `tx` and source `src` reading `in/` with this reader.
fn project(r: &ReaderCase) -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file(
        "sources/src.toml",
        format!(
            "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Description\"\n\
             [reader]\n{}\n",
            r.reader
        ),
    );
    std::fs::create_dir_all(p.path("in")).expect("mkdir");
    p
}

/// `sync`, asserting its exit code with the reader and the case named.
fn sync(p: &Project, what: &str, code: i32) -> Out {
    let out = p.sync();
    assert_eq!(
        out.code, code,
        "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    out
}

fn assert_has(what: &str, stream: &str, text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{what}: {stream} lacks {n:?}:\n{text}");
    }
}

fn good_rows(r: &ReaderCase) -> i64 {
    i64::try_from(r.amounts.len()).expect("a few rows")
}

/// Run a case of every reader.
fn run_case(case: &str) {
    for r in READERS {
        check_case(r, case, r.case(case));
    }
}

/// Load the reader's normal file as `in/a_good.<ext>`, then add the case's file as
/// `in/b_<case>.<ext>`, sync again, and check what the user gets.
fn check_case(r: &ReaderCase, case: &str, c: &Case) {
    let what = format!("reader `{}`, case `{case}`", r.name);
    let p = project(r);
    p.file(&format!("in/a_good.{}", r.ext), (r.normal)());
    sync(&p, &format!("{what} (the good file first)"), 0);
    let file = format!("in/b_{case}.{}", r.ext);
    p.file(&file, (c.bytes)());
    let unit = |column: &str| {
        p.texts(&format!(
            "SELECT {column} FROM meta.loads WHERE path = '{file}'"
        ))
    };
    let loaded = "SELECT count(*) FROM meta.loads WHERE status = 'loaded'";
    match c.want {
        Want::Loads { rows, memo } => {
            let out = sync(&p, &what, 0);
            let needles = ["src", "loaded", file.as_str()];
            assert_has(&what, "stdout", &out.stdout, &needles);
            assert!(!out.stderr.contains("error"), "{what}: {}", out.stderr);
            assert_eq!(
                unit("status || ' ' || rows_read::VARCHAR"),
                [format!("loaded {rows}")],
                "{what}: the unit's load"
            );
            assert_eq!(p.int(loaded), 2, "{what}: loaded units");
            if let Some(memo) = memo {
                let sql = format!("SELECT count(*) FROM main.tx WHERE memo = '{memo}'");
                assert_eq!(p.int(&sql), 1, "{what}: memo {memo:?}");
            }
        }
        Want::Fails { code, says } => {
            let out = sync(&p, &what, code);
            let needles = ["source `src`", file.as_str(), says];
            assert_has(&what, "stderr", &out.stderr, &needles);
            // Nothing of the unit landed: the vault holds the good file, as it did.
            let rows = good_rows(r);
            assert_eq!(p.int("SELECT count(*) FROM main.src"), rows, "{what}: rows");
            assert_eq!(
                p.int("SELECT count(*) FROM vault.hub_tx"),
                rows,
                "{what}: keys"
            );
            assert_eq!(p.satellites("src").len(), 1, "{what}: satellites");
            assert_eq!(p.int(loaded), 1, "{what}: loaded units");
            let status = if code == 1 { "rejected" } else { "failed" };
            assert_eq!(unit("status"), [status], "{what}: the unit's status");
            let error = unit("error");
            assert!(
                error.len() == 1 && error[0].contains(&file),
                "{what}: the recorded error names the file: {error:?}"
            );
        }
    }
}

#[test]
fn normal_file_loads_every_row_exactly() {
    for r in READERS {
        let what = format!("reader `{}`, case `normal`", r.name);
        let p = project(r);
        let file = format!("in/a_good.{}", r.ext);
        p.file(&file, (r.normal)());
        let out = sync(&p, &what, 0);
        let needles = ["src", "loaded", file.as_str()];
        assert_has(&what, "stdout", &out.stdout, &needles);
        let rows = good_rows(r);
        assert_eq!(
            p.texts("SELECT amount::VARCHAR FROM main.tx ORDER BY date"),
            r.amounts,
            "{what}: amounts"
        );
        assert_eq!(
            p.texts("SELECT \"row_number\"::VARCHAR FROM main.src ORDER BY \"row_number\""),
            r.row_numbers,
            "{what}: provenance"
        );
        assert_eq!(
            p.int("SELECT count(*) FROM vault.hub_tx"),
            rows,
            "{what}: keys"
        );
        assert_eq!(p.satellites("src").len(), 1, "{what}: satellites");
        assert_eq!(
            p.texts("SELECT status || ' ' || rows_read::VARCHAR FROM meta.loads"),
            [format!("loaded {rows}")],
            "{what}: meta.loads"
        );
    }
}

#[test]
fn empty_file_is_unreadable() {
    run_case("empty");
}

#[test]
fn header_only_file_loads_no_rows() {
    run_case("header_only");
}

#[test]
fn truncated_file_is_unreadable() {
    run_case("truncated");
}

#[test]
fn file_of_another_format_is_refused() {
    run_case("not_this_format");
}

#[test]
fn wrong_encoding_is_decoded_or_refused() {
    run_case("wrong_encoding");
}

#[test]
fn every_reader_keeps_its_input_in_the_lake() {
    for r in READERS {
        let what = format!("reader `{}`, the lake", r.name);
        let p = project(r);
        let bytes = (r.normal)();
        p.file(&format!("in/a_good.{}", r.ext), &bytes);
        sync(&p, &what, 0);
        let files = p.lake_files();
        assert_eq!(files.len(), 1, "{what}: {files:?}");
        let kept = std::fs::read(&files[0]).expect("the lake file");
        assert!(
            kept == bytes,
            "{what}: the lake's copy differs from the input"
        );
    }
}
