//! Test projects and a builder for running the binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A project in a temp folder.
pub struct Project {
    pub dir: TempDir,
}

/// The output of one run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Assert the exit code, showing both streams when it differs.
    pub fn code(self, want: i32) -> Self {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Assert that stderr contains every needle.
    pub fn stderr_has(self, needles: &[&str]) -> Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Assert that stdout contains every needle.
    pub fn stdout_has(self, needles: &[&str]) -> Self {
        for n in needles {
            assert!(
                self.stdout.contains(n),
                "stdout lacks {n:?}:\n{}",
                self.stdout
            );
        }
        self
    }
}

pub const TX_TAG: &str = r#"
description = "money"
[fields]
date   = { type = "date" }
amount = { type = "decimal" }
memo   = { type = "text", nullable = true }
"#;

/// A source keyed by `id`, reading `in/bank/*.csv`.
pub const BANK_SOURCE: &str = r#"
tags = ["tx"]
primary_key = ["id"]
[fields]
date = "Date"
amount = "Amount"
memo = "Memo"
[reader]
type = "csv"
path = "in/bank/*.csv"
"#;

/// A content-keyed source reading the folder `in/card`.
pub const CARD_SOURCE: &str = r#"
tags = ["tx"]
[fields]
date = "Date"
amount = "Amount"
memo = "Memo"
[reader]
type = "csv"
path = "in/card"
"#;

impl Project {
    /// An empty project.
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A project with tag `tx` and sources `bank` (primary key) and `card` (content key).
    pub fn tx() -> Self {
        let p = Project::new();
        p.file("tags/tx.toml", TX_TAG);
        p.file("sources/bank.toml", BANK_SOURCE);
        p.file("sources/card.toml", CARD_SOURCE);
        for dir in ["in/bank", "in/card"] {
            std::fs::create_dir_all(p.path(dir)).expect("mkdir");
        }
        p
    }

    /// A copy of the repository's own tags/, sources/ and data/.
    pub fn shipped() -> Self {
        let p = Project::new();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["tags", "sources", "data"] {
            copy_dir(&root.join(dir), &p.path(dir));
        }
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file (creating folders).
    pub fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
        self
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).expect("remove");
    }

    /// Run the binary in this project.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    /// Run with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        self.run_input(args, "", env)
    }

    /// Run with `stdin` as standard input and extra environment variables.
    pub fn run_input(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
        let mut cmd = Command::cargo_bin("ingestor").expect("binary");
        cmd.arg("-C")
            .arg(self.dir.path())
            .args(args)
            .write_stdin(stdin);
        cmd.env_remove("INGESTOR_SECRET_VAULT_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run ingestor");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Start `ingestor sync` here, output discarded, and kill it with SIGKILL after
    /// `delay`; its exit status (0 when it ended before the kill).
    pub fn kill_sync_after(&self, delay: std::time::Duration) -> std::process::ExitStatus {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ingestor"))
            .arg("-C")
            .arg(self.dir.path())
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL: no cleanup runs
        child.wait().expect("wait")
    }

    pub fn sync(&self) -> Out {
        self.run(&["sync"])
    }

    /// Open the vault (the binary must have exited).
    pub fn db(&self) -> duckdb::Connection {
        duckdb::Connection::open(self.path("ingestor.duckdb")).expect("open vault")
    }

    /// A single integer from SQL.
    pub fn int(&self, sql: &str) -> i64 {
        self.db()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row, as text.
    pub fn texts(&self, sql: &str) -> Vec<String> {
        let db = self.db();
        let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map([], |r| r.get::<_, Option<String>>(0))
            .expect("query")
            .map(|r| r.expect("row").unwrap_or_else(|| "NULL".into()))
            .collect()
    }

    /// Names of the satellites of a source, oldest first.
    pub fn satellites(&self, source: &str) -> Vec<String> {
        self.texts(&format!(
            "SELECT table_name FROM meta.satellites WHERE source = '{source}' ORDER BY created_at, table_name"
        ))
    }

    /// Object files in the lake (its manifest and temporary files left out).
    pub fn lake_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(dirs) = std::fs::read_dir(self.path("lake")) {
            for d in dirs.flatten().filter(|d| d.path().is_dir()) {
                for f in std::fs::read_dir(d.path()).expect("lake dir").flatten() {
                    if !f.file_name().to_string_lossy().starts_with('.') {
                        out.push(f.path());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The lake's manifest lines, parsed.
    pub fn manifest(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("lake/manifest.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("manifest line is JSON"))
            .collect()
    }
}

/// A bank export of `rows` keyed rows (ids `F<file>R<i>`), the same every time.
pub fn bank_csv(file: usize, rows: usize) -> String {
    let mut body = String::from("id,Date,Amount,Memo\n");
    for i in 0..rows {
        body.push_str(&format!(
            "F{file}R{i},2026-01-{:02},{}.{:02},memo {i}\n",
            i % 28 + 1,
            i % 500,
            i % 100
        ));
    }
    body
}

/// A workbook from tests/fixtures/excel.
pub fn excel_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/excel")
            .join(name),
    )
    .expect("fixture")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A one-page PDF showing `lines` top to bottom in `font` (a font dictionary).
pub fn simple_pdf(lines: &[&str], font: &str) -> Vec<u8> {
    let mut content = String::new();
    for (i, line) in lines.iter().enumerate() {
        let text = line
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        content.push_str(&format!(
            "BT /F1 10 Tf 50 {} Td ({text}) Tj ET\n",
            750 - 14 * i
        ));
    }
    build_pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .into(),
        font.as_bytes().to_vec(),
        stream("", content.as_bytes()),
    ])
}

/// A stream object with `dict` entries besides its length.
pub fn stream(dict: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("<< /Length {} {dict} >>\nstream\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A PDF of these objects, numbered from 1 (object 1 is the catalog), with its xref.
pub fn build_pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A zip archive of `files` stored without compression: each local header and its bytes,
/// the central directory, and the record that ends it.
pub fn stored_zip(files: &[(&str, &str)]) -> Vec<u8> {
    fn le16(out: &mut Vec<u8>, values: &[u16]) {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn le32(out: &mut Vec<u8>, values: &[u32]) {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    // 2026-01-01 in MS-DOS form (years since 1980, month, day); the time is 00:00.
    const DOS_DATE: u16 = (46 << 9) | (1 << 5) | 1;
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, text) in files {
        let size = u32::try_from(text.len()).expect("a small part");
        let offset = u32::try_from(out.len()).expect("a small archive");
        let name_len = u16::try_from(name.len()).expect("a short name");
        // What the local header and the directory entry share: version 2.0, no flags,
        // stored, time, date, CRC-32, both sizes, the name's length, no extra field.
        let mut shared = Vec::new();
        le16(&mut shared, &[20, 0, 0, 0, DOS_DATE]);
        le32(&mut shared, &[crc32(text.as_bytes()), size, size]);
        le16(&mut shared, &[name_len, 0]);
        le32(&mut out, &[0x0403_4b50]);
        out.extend_from_slice(&shared);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(text.as_bytes());
        // Made by version 2.0; then no comment, disk 0, no attributes, the header's offset.
        le32(&mut central, &[0x0201_4b50]);
        le16(&mut central, &[20]);
        central.extend_from_slice(&shared);
        le16(&mut central, &[0, 0, 0]);
        le32(&mut central, &[0, offset]);
        central.extend_from_slice(name.as_bytes());
    }
    let count = u16::try_from(files.len()).expect("few parts");
    let size = u32::try_from(central.len()).expect("a small directory");
    let offset = u32::try_from(out.len()).expect("a small archive");
    out.extend_from_slice(&central);
    le32(&mut out, &[0x0605_4b50]);
    le16(&mut out, &[0, 0, count, count]);
    le32(&mut out, &[size, offset]);
    le16(&mut out, &[0]);
    out
}

/// CRC-32 as zip has it (IEEE, reflected).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One row of `xlsx_with_rows`: its number, whether it is hidden, its cells as (column
/// letter, text or number).
pub type SheetRow<'a> = (u32, bool, &'a [(&'a str, &'a str)]);

/// A one-sheet xlsx (sheet `Bookings & more`) of `rows`.
pub fn xlsx_with_rows(rows: &[SheetRow<'_>]) -> Vec<u8> {
    xlsx_with_sheets(&[("Bookings & more", rows)])
}

/// An xlsx of sheets (name, rows), in order.
pub fn xlsx_with_sheets(sheets: &[(&str, &[SheetRow<'_>])]) -> Vec<u8> {
    let xml = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let sheet_xml = |rows: &[SheetRow<'_>]| {
        let mut data = String::new();
        for (r, hidden, cells) in rows {
            data.push_str(&format!(
                "<row r=\"{r}\"{}>",
                if *hidden { " hidden=\"1\"" } else { "" }
            ));
            for (col, v) in *cells {
                if v.parse::<f64>().is_ok() {
                    data.push_str(&format!("<c r=\"{col}{r}\"><v>{v}</v></c>"));
                } else {
                    data.push_str(&format!(
                        "<c r=\"{col}{r}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                        xml(v)
                    ));
                }
            }
            data.push_str("</row>");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
             <sheetData>{data}</sheetData></worksheet>"
        )
    };
    let rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let types = "application/vnd.openxmlformats-officedocument.spreadsheetml";
    let overrides: String = (1..=sheets.len())
        .map(|i| {
            format!(
                "<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"{types}.worksheet+xml\"/>"
            )
        })
        .collect();
    let content_types = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
         <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
         <Override PartName=\"/xl/workbook.xml\" ContentType=\"{types}.sheet.main+xml\"/>\
         {overrides}</Types>"
    );
    let relationships = |items: String| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             {items}</Relationships>"
        )
    };
    let package = relationships(format!(
        "<Relationship Id=\"rId1\" Type=\"{rels}/officeDocument\" Target=\"xl/workbook.xml\"/>"
    ));
    let workbook_rels = relationships(
        (1..=sheets.len())
            .map(|i| {
                format!(
                    "<Relationship Id=\"rId{i}\" Type=\"{rels}/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>"
                )
            })
            .collect(),
    );
    let listed: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "<sheet name=\"{}\" sheetId=\"{n}\" r:id=\"rId{n}\"/>",
                xml(name),
                n = i + 1
            )
        })
        .collect();
    let workbook = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"{rels}\">\
         <sheets>{listed}</sheets></workbook>"
    );
    let parts: Vec<(String, String)> = sheets
        .iter()
        .enumerate()
        .map(|(i, (_, rows))| (format!("xl/worksheets/sheet{}.xml", i + 1), sheet_xml(rows)))
        .collect();
    let mut files: Vec<(&str, &str)> = vec![
        ("[Content_Types].xml", content_types.as_str()),
        ("_rels/.rels", package.as_str()),
        ("xl/workbook.xml", workbook.as_str()),
        ("xl/_rels/workbook.xml.rels", workbook_rels.as_str()),
    ];
    files.extend(parts.iter().map(|(n, x)| (n.as_str(), x.as_str())));
    stored_zip(&files)
}
