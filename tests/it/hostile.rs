//! The hostile-input corpus (issue 12): inputs, definitions and vault files generated
//! here, each run beside a good source. For every case: the documented exit code, a
//! message that names the source and the file (and the line or cell where there is one),
//! nothing of the bad unit in the vault, and the good source of the same run loaded.

use crate::common::{simple_pdf, stored_zip, Out, Project, TX_TAG};

const GOOD: &str = "tags = [\"tx\"]\nprimary_key = [\"id\"]\n[fields]\ndate = \"Date\"\n\
    amount = \"Amount\"\nmemo = \"Memo\"\n[reader]\ntype = \"csv\"\npath = \"in/good\"\n";

/// A case: the bad source's `[reader]` lines, its file's name and bytes, and what a
/// user must get.
#[derive(Clone)]
struct Case {
    name: String,
    reader: String,
    file: String,
    bytes: Vec<u8>,
    code: i32,
    /// Also in stderr (besides the source and the file).
    says: String,
    /// For a damaged copy of a good file (`code` -3): the good file.
    undamaged: Vec<u8>,
}

fn case(
    name: &str,
    reader: &str,
    file: &str,
    bytes: impl Into<Vec<u8>>,
    code: i32,
    says: &str,
) -> Case {
    Case {
        name: name.into(),
        reader: reader.into(),
        file: file.into(),
        bytes: bytes.into(),
        code,
        says: says.into(),
        undamaged: Vec::new(),
    }
}

/// A copy of `good` with one byte changed: refused, or loaded as `good` is.
fn damaged(name: &str, reader: &str, file: &str, good: &[u8], at: usize, byte: Option<u8>) -> Case {
    let mut bytes = good.to_vec();
    if let Some(b) = bytes.get_mut(at) {
        *b = byte.unwrap_or(*b ^ 0xff);
    }
    Case {
        undamaged: good.to_vec(),
        ..case(name, reader, file, bytes, -3, "")
    }
}

const CSV: &str = "type = \"csv\"\npath = \"in/bad\"";
const HEAD: &str = "Date,Amount,Memo\n";

fn csv(rows: &str) -> Vec<u8> {
    format!("{HEAD}{rows}").into_bytes()
}

fn csv_cases() -> Vec<Case> {
    let mut out = vec![
        case(
            "nul bytes",
            CSV,
            "a.csv",
            b"Date,Amount,Memo\n2026-01-01,1\x00\x00,x\n".to_vec(),
            3,
            "is not text",
        ),
        case(
            "gzip named csv",
            CSV,
            "a.csv",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xf3H\xcd\xc9\xc9W\x08\xcf/\xcaIQ\x04\x00"
                .to_vec(),
            3,
            "is not text",
        ),
        case(
            "unclosed quote at the end",
            CSV,
            "a.csv",
            csv("2026-01-01,1.00,\"open"),
            3,
            "line 2",
        ),
        case(
            "quote swallowing rows",
            CSV,
            "a.csv",
            csv("2026-01-01,1.00,\"open\n2026-01-02,2.00,x\n2026-01-03,3.00,y\n"),
            3,
            "line 2",
        ),
        case(
            "invalid utf-8 under explicit utf-8",
            "type = \"csv\"\npath = \"in/bad\"\nencoding = \"utf-8\"",
            "a.csv",
            csv("2026-01-01,1.00,caf\u{e9}\n")
                .into_iter()
                .map(|b| if b == 0xc3 { 0xe9 } else { b })
                .collect::<Vec<u8>>(),
            3,
            "line 2",
        ),
        case(
            "empty file",
            CSV,
            "a.csv",
            Vec::new(),
            3,
            "has no header row",
        ),
        case(
            "only a BOM",
            CSV,
            "a.csv",
            b"\xef\xbb\xbf".to_vec(),
            3,
            "has no header row",
        ),
        case(
            "ragged row",
            CSV,
            "a.csv",
            csv("2026-01-01,1.00,x,extra,more\n"),
            3,
            "line 2",
        ),
        case(
            "tag field missing",
            CSV,
            "a.csv",
            b"Date,Betrag,Memo\n2026-01-01,1.00,x\n".to_vec(),
            1,
            "Amount",
        ),
        case(
            "header TEXT and text",
            CSV,
            "a.csv",
            b"Date,Amount,Memo,text,TEXT\n2026-01-01,1.00,x,a,b\n".to_vec(),
            0,
            "",
        ),
        case(
            "terminal escape in a value",
            CSV,
            "a.csv",
            csv("2026-01-01,\x1b[31m1.00,x\n"),
            1,
            "\\u{1b}",
        ),
        case(
            "a 2 MB header name",
            CSV,
            "a.csv",
            format!(
                "Date,Amount,Memo,{}\n2026-01-01,1.00,x,y\n",
                "h".repeat(2 << 20)
            ),
            0,
            "",
        ),
    ];
    for bad in [
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "1.2.3",
        "\"12,34,56\"",
        "--1",
        "1 2",
        "0x10",
        "١٢٣",
        "∞",
        "1e",
        "+-1",
        "\"1,000.00.00\"",
        "12 EUR 3",
        ".",
    ] {
        out.push(case(
            &format!("amount `{bad}`"),
            CSV,
            "a.csv",
            csv(&format!("2026-01-01,{bad},x\n")),
            1,
            "line 2",
        ));
    }
    for bad in [
        "2026-02-30",
        "2026-13-01",
        "01.01.2026",
        "yesterday",
        "2026-1-1x",
        "99999-01-01",
        "0000-00-00",
        "",
        "2026/01/01T",
    ] {
        out.push(case(
            &format!("date `{bad}`"),
            CSV,
            "a.csv",
            csv(&format!("{bad},1.00,x\n")),
            1,
            "line 2",
        ));
    }
    for (i, bytes) in [
        &b"\xff\xfe\x00"[..],
        b"PK\x03\x04\x14\x00",
        b"%PDF-1.4\n",
        b"\x89PNG\r\n\x1a\n\x00",
        b"<html><body><table><tr><td>x</td></tr></table></body></html>",
    ]
    .iter()
    .enumerate()
    {
        let mut b = bytes.to_vec();
        b.extend(std::iter::repeat_n(0u8, 64));
        out.push(case(&format!("foreign bytes {i}"), CSV, "a.csv", b, 3, ""));
    }
    out
}

fn json_cases() -> Vec<Case> {
    let r = "type = \"json\"\npath = \"in/bad\"\nrecords = \"/data\"";
    let mut out = Vec::new();
    for (name, text, says) in [
        (
            "cut short",
            "{\"data\": [{\"Date\": \"2026-01-01\", \"Amount\": 1",
            "cut short",
        ),
        ("not json", "<html>error</html>", "expected a value"),
        (
            "records not an array",
            "{\"data\": {\"Date\": 1}}",
            "not an array",
        ),
        ("no records", "{\"items\": []}", "no records at `/data`"),
        (
            "record not an object",
            "{\"data\": [1]}",
            "a record must be an object",
        ),
        (
            "duplicate key",
            "{\"data\": [{\"Date\": \"2026-01-01\", \"Date\": \"x\"}]}",
            "given twice",
        ),
        (
            "nested too deep",
            &format!("{{\"data\": {}", "[".repeat(600)),
            "nested more than",
        ),
        (
            "bad escape",
            "{\"data\": [{\"Memo\": \"\\q\"}]}",
            "not an escape",
        ),
        (
            "lone surrogate",
            "{\"data\": [{\"Memo\": \"\\ud800\"}]}",
            "surrogate",
        ),
        (
            "leading zero",
            "{\"data\": [{\"Amount\": 012}]}",
            "cannot start with 0",
        ),
        ("trailing garbage", "{\"data\": []} x", "more after the end"),
        (
            "NaN literal",
            "{\"data\": [{\"Amount\": NaN}]}",
            "expected a value",
        ),
    ] {
        out.push(case(&format!("json {name}"), r, "a.json", text, 3, says));
    }
    out.push(case(
        "json amount text",
        r,
        "a.json",
        "{\"data\": [{\"Date\": \"2026-01-01\", \"Amount\": \"ten\", \"Memo\": \"x\"}]}",
        1,
        "record 1",
    ));
    out.push(case(
        "json field missing",
        r,
        "a.json",
        "{\"data\": [{\"Date\": \"2026-01-01\", \"Memo\": \"x\"}]}",
        1,
        "Amount",
    ));
    out
}

fn excel_cases() -> Vec<Case> {
    let r = "type = \"excel\"\npath = \"in/bad\"";
    let statement = crate::common::excel_fixture("statement.xlsx");
    let mut out = vec![
        case(
            "xlsx truncated",
            r,
            "a.xlsx",
            statement[..statement.len() / 2].to_vec(),
            3,
            "not a readable",
        ),
        case(
            "xlsx of random bytes",
            r,
            "a.xlsx",
            (0..5000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect::<Vec<u8>>(),
            3,
            "",
        ),
        case(
            "a zip that is no workbook",
            r,
            "a.xlsx",
            stored_zip(&[("hello.txt", "hi")]),
            3,
            "not a readable",
        ),
        case(
            "far cells",
            r,
            "a.xlsx",
            crate::common::excel_fixture("far-cells.xlsx"),
            3,
            "max_cells",
        ),
        case(
            "bad shared string index",
            r,
            "a.xlsx",
            crate::common::excel_fixture("bad-shared-string.xlsx"),
            3,
            "",
        ),
        case(
            "protected workbook",
            r,
            "a.xlsx",
            crate::common::excel_fixture("protected.xlsx"),
            3,
            "password",
        ),
        case("empty xls", r, "a.xls", Vec::new(), 3, ""),
        case(
            "ods of text",
            r,
            "a.ods",
            b"Date,Amount,Memo\n".to_vec(),
            3,
            "",
        ),
        case("xlsb of zeros", r, "a.xlsb", vec![0u8; 2048], 3, ""),
    ];
    // Every byte flipped in turn at a few places of a real workbook: never a panic.
    for at in [100usize, 1000, 2000, 3000, 4000] {
        out.push(damaged(
            &format!("xlsx with byte {at} flipped"),
            r,
            "a.xlsx",
            &statement,
            at,
            None,
        ));
    }
    out
}

fn pdf_cases() -> Vec<Case> {
    let r = "type = \"pdf\"\npath = \"in/bad\"\n\
             row = '(?P<Date>\\d{4}-\\d{2}-\\d{2}) (?P<Amount>-?[\\d.]+) (?P<Memo>.+)'";
    let font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";
    let good = simple_pdf(&["Date Amount Memo", "2026-01-01 1.00 x"], font);
    let mut out = vec![
        case(
            "pdf cut short",
            r,
            "a.pdf",
            good[..good.len() / 2].to_vec(),
            3,
            "cut short",
        ),
        case(
            "pdf not a pdf",
            r,
            "a.pdf",
            b"GIF89a".to_vec(),
            3,
            "not a PDF file",
        ),
        case("pdf empty", r, "a.pdf", Vec::new(), 3, "not a PDF file"),
        case(
            "pdf no pages",
            r,
            "a.pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
                .to_vec(),
            3,
            "",
        ),
        case(
            "pdf amount not a number",
            r,
            "a.pdf",
            simple_pdf(&["2026-01-01 1.2.3 x"], font),
            1,
            "page 1 line 1",
        ),
        case(
            "pdf unmapped glyphs",
            r,
            "a.pdf",
            simple_pdf(
                &["2026-01-01 1.00 x"],
                "<< /Type /Font /Subtype /TrueType /BaseFont /S /FontDescriptor << /Flags 4 >> >>",
            ),
            3,
            "no Unicode mapping",
        ),
    ];
    for at in [50usize, 200, 300, 400, 500] {
        out.push(damaged(
            &format!("pdf with byte {at} changed"),
            r,
            "a.pdf",
            &good,
            at,
            Some(b'@'),
        ));
    }
    out
}

/// A project with tag `tx` and the good source (one row).
fn with_good_source() -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file("sources/good.toml", GOOD);
    p.file(
        "in/good/g.csv",
        "id,Date,Amount,Memo\nG1,2026-01-01,5.00,good\n",
    );
    p
}

/// A project with the good source and the case's bad source.
fn project(c: &Case) -> Project {
    let p = with_good_source();
    p.file(
        "sources/bad.toml",
        format!(
            "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Memo\"\n[reader]\n{}\n",
            c.reader
        ),
    );
    p.file(&format!("in/bad/{}", c.file), &c.bytes);
    p
}

/// Run one input case; `None` when it went as it must, else what went wrong.
fn run(c: &Case) -> Option<String> {
    let p = project(c);
    let out: Out = p.sync();
    let wrong = |why: String| {
        Some(format!(
            "{}: {why}\n--- stderr\n{}",
            c.name,
            crate::hostile::tail(&out.stderr)
        ))
    };
    // -3: any refusal of the file (3, or 1 for its values), never a crash, never 0 with
    // the file's rows silently wrong.
    let code_ok = match c.code {
        -3 => out.code == 3 || out.code == 1 || out.code == 0,
        want => out.code == want,
    };
    if !code_ok {
        return wrong(format!("exit {} instead of {}", out.code, c.code));
    }
    if out.stderr.contains("panicked") || out.stderr.contains("RUST_BACKTRACE") {
        return wrong("a panic".into());
    }
    if out.stderr.contains('\u{1b}') {
        return wrong("a raw control byte reached the terminal".into());
    }
    let good = p.int("SELECT count(*) FROM meta.loads WHERE source = 'good' AND status = 'loaded'");
    if good != 1 {
        return wrong("the good source did not load".into());
    }
    if out.code == 0 && c.code == -3 {
        // A damaged file that loads must load what the undamaged one does (the byte hit
        // something no value depends on), or nothing: never other rows.
        let rows = |p: &Project| {
            p.texts(
                "SELECT coalesce(string_agg(\"Date\"::VARCHAR || ' ' || \"Amount\"::VARCHAR || ' ' || \"Memo\", '|' \
                 ORDER BY \"row_number\"), '') FROM main.bad",
            )
        };
        let loaded = rows(&p);
        let whole = project(&Case {
            bytes: c.undamaged.clone(),
            ..c.clone()
        });
        whole.sync().code(0);
        if loaded != [String::new()] && loaded != rows(&whole) {
            return wrong(format!(
                "exit 0 with rows {loaded:?}, the undamaged file gives {:?}",
                rows(&whole)
            ));
        }
    }
    if out.code != 0 {
        let file = format!("in/bad/{}", c.file);
        for needle in ["source `bad`", file.as_str(), c.says.as_str()] {
            if !out.stderr.contains(needle) {
                return wrong(format!("stderr lacks {needle:?}"));
            }
        }
        let landed =
            p.int("SELECT count(*) FROM meta.loads WHERE source = 'bad' AND status = 'loaded'");
        if landed != 0 {
            return wrong("the bad unit was committed".into());
        }
        let rows = p.int("SELECT count(*) FROM vault.hub_tx");
        if rows != 1 {
            return wrong(format!("the hub holds {rows} keys, not the good one alone"));
        }
    }
    None
}

fn tail(text: &str) -> String {
    text.chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Definitions that are wrong: exit 2, naming the file; nothing loads, no vault is
/// written.
fn definition_cases() -> Vec<(String, String, String, String)> {
    let src = |reader: &str| {
        format!("tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Memo\"\n[reader]\n{reader}\n")
    };
    vec![
        ("toml syntax", "sources/bad.toml".into(), "tags = [\"tx\"\n".into(), "bad.toml".into()),
        ("unknown reader", "sources/bad.toml".into(), src("type = \"parquet\"\npath = \"x\""), "parquet".into()),
        ("unknown key", "sources/bad.toml".into(), src("type = \"csv\"\npath = \"x\"\ndelimeter = \";\""), "delimeter".into()),
        ("bad regex", "sources/bad.toml".into(), src("type = \"csv\"\npath = \"x\"\nend = \"(\""), "regular expression".into()),
        ("bad date format", "sources/bad.toml".into(), src("type = \"csv\"\npath = \"x\"\ndate_format = \"%Q\""), "chrono".into()),
        ("bad delimiter", "sources/bad.toml".into(), src("type = \"csv\"\npath = \"x\"\ndelimiter = \"ab\""), "delimiter".into()),
        ("pdf row without groups", "sources/bad.toml".into(), src("type = \"pdf\"\npath = \"x\"\nrow = '\\d+'"), "named groups".into()),
        ("api bad url", "sources/bad.toml".into(), src("type = \"api\"\nurl = \"ftp://x\""), "http".into()),
        ("api bad pointer", "sources/bad.toml".into(), src("type = \"api\"\nurl = \"http://x\"\nrecords = \"data\""), "JSON pointer".into()),
        ("api two cursors", "sources/bad.toml".into(), src("type = \"api\"\nurl = \"http://x\"\nincremental = { param = \"a\", field = \"b\", token = \"/c\" }"), "incremental".into()),
        ("json bad pointer", "sources/bad.toml".into(), src("type = \"json\"\npath = \"x\"\nrecords = \"x\""), "JSON pointer".into()),
        ("tag unknown type", "tags/tx.toml".into(), "[fields]\ndate = { type = \"datetime2\" }\n".into(), "tx.toml".into()),
        ("source names no tag", "sources/bad.toml".into(), "tags = [\"nope\"]\n[reader]\ntype = \"csv\"\npath = \"x\"\n".into(), "nope".into()),
        ("memory limit", "ingestor.toml".into(), "[duckdb]\nmemory_limit = \"lots\"\n".into(), "memory_limit".into()),
        ("max columns", "ingestor.toml".into(), "[limits]\nmax_columns = \"many\"\n".into(), "max_columns".into()),
        ("unknown project key", "ingestor.toml".into(), "databse = \"x.duckdb\"\n".into(), "databse".into()),
    ]
    .into_iter()
    .map(|(n, f, t, s)| (n.to_string(), f, t, s))
    .collect()
}

/// Vault files that are not this project's vault: exit 4, the file left as it was.
fn vault_cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut sqlite = b"SQLite format 3\x00".to_vec();
    sqlite.extend(vec![0u8; 4080]);
    let mut duck_garbage = vec![0u8; 8];
    duck_garbage.extend_from_slice(b"DUCK");
    duck_garbage.extend(vec![0xab; 8192]);
    vec![
        ("an sqlite file", sqlite),
        (
            "random bytes",
            (0..9000u32)
                .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
                .collect(),
        ),
        ("a duckdb header over garbage", duck_garbage),
        ("a text file", b"my notes\n".to_vec()),
        ("a csv", b"a,b\n1,2\n".to_vec()),
    ]
}

#[test]
fn hostile_inputs_fail_by_name_and_leave_the_good_source_loaded() {
    let cases: Vec<Case> = [csv_cases(), json_cases(), excel_cases(), pdf_cases()]
        .into_iter()
        .flatten()
        .collect();
    let defs = definition_cases();
    let vaults = vault_cases();
    let total = cases.len() + defs.len() + vaults.len();
    assert!(total >= 100, "the corpus has {total} cases");
    let mut failures: Vec<String> = cases.iter().filter_map(run).collect();
    for (name, file, text, says) in &defs {
        let p = with_good_source();
        p.file(file, text);
        let out = p.sync();
        if out.code != 2 || !out.stderr.contains(says.as_str()) || out.stderr.contains("panicked") {
            failures.push(format!(
                "definition {name}: exit {} {}",
                out.code,
                tail(&out.stderr)
            ));
        } else if p.path("ingestor.duckdb").exists() {
            failures.push(format!("definition {name}: a vault was written"));
        }
    }
    for (name, bytes) in &vaults {
        let p = with_good_source();
        p.file("ingestor.duckdb", bytes);
        for args in [&["sync"][..], &["status"][..], &["sql", "SELECT 1"][..]] {
            let out = p.run(args);
            let after = std::fs::read(p.path("ingestor.duckdb")).expect("vault file");
            if out.code != 4 || !out.stderr.contains("ingestor.duckdb") || after != *bytes {
                failures.push(format!(
                    "vault {name}, `{}`: exit {} {}",
                    args.join(" "),
                    out.code,
                    tail(&out.stderr)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases went wrong:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
