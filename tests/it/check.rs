//! `check`: the tag contract, reading only what it needs, in every output format.

use crate::common::Project;

const GOOD: &str = "id,Date,Amount,Memo\nT1,2026-01-01,-4.50,Coffee\n";

#[test]
fn passing_sources_exit_zero_and_touch_no_vault() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", GOOD);
    p.file(
        "in/card/jan.csv",
        "Date,Amount,Memo\n2026-01-05,-3.10,Coffee\n",
    );
    p.run(&["check"])
        .code(0)
        .stdout_has(&["ok    bank", "in/bank/jan.csv", "ok    card"]);
    assert!(!p.path("ingestor.duckdb").exists());
    assert!(p.lake_files().is_empty());
}

#[test]
fn check_reads_headers_only() {
    // A bad value deep in a file is found by `sync`, not by `check`: check validates the
    // contract (columns), which a header alone decides.
    let p = Project::tx();
    p.file("in/bank/jan.csv", format!("{GOOD}T2,2026-01-02,oops,x\n"));
    p.run(&["check"]).code(0);
    p.sync().code(1);
}

#[test]
fn json_format_lists_every_input() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", GOOD);
    p.file("in/bank/feb.csv", "id,Date,Memo\nT2,2026-02-01,x\n");
    let out = p.run(&["check", "--format", "json"]).code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 1);
    let inputs = doc["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 2);
    let bad: Vec<_> = inputs.iter().filter(|i| i["ok"] == false).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["path"], "in/bank/feb.csv");
    assert!(bad[0]["error"]
        .as_str()
        .expect("error")
        .contains("field `amount`"));
}

#[test]
fn github_format_annotates_the_failing_file() {
    let p = Project::tx();
    p.file("in/bank/feb.csv", "id,Date,Memo\nT2,2026-02-01,x\n");
    let out = p.run(&["check", "--format", "github"]).code(1);
    assert!(
        out.stdout.starts_with(
            "::error file=sources/bank.toml,title=ingestor check: bank::in/bank/feb.csv: "
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn missing_primary_key_column_breaks_the_contract() {
    let p = Project::tx();
    p.file(
        "in/bank/jan.csv",
        "ID,Date,Amount,Memo\nT1,2026-01-01,-4.50,Coffee\n",
    );
    p.run(&["check", "bank"])
        .code(1)
        .stdout_has(&["primary key column `id`", "closest column: `ID`"]);
}

#[test]
fn unreadable_input_exits_three() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", "");
    p.run(&["check", "bank"])
        .code(3)
        .stdout_has(&["in/bank/jan.csv", "no header"]);
}

#[test]
fn junit_format_is_a_report_ci_systems_read() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", GOOD);
    p.file("in/bank/feb.csv", "id,Date,Memo\nT2,2026-02-01,x\n");
    let out = p.run(&["check", "--format", "junit"]).code(1);
    let xml = out.stdout;
    assert!(
        xml.contains("<testsuites name=\"ingestor check\" tests=\"2\" failures=\"1\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"bank\" tests=\"2\" failures=\"1\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"bank\" name=\"in/bank/jan.csv\"/>"),
        "{xml}"
    );
    assert!(xml.contains("type=\"exit 1\">"), "{xml}");
    // Quotes and backticks of the message are escaped: the report is well-formed XML.
    let mut parse = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(parse.stdin.as_mut().expect("stdin"), xml.as_bytes()).expect("write");
    drop(parse.stdin.take());
    assert!(
        parse.wait().expect("wait").success(),
        "not well-formed:\n{xml}"
    );
}

/// The README's CI jobs run `ingestor check --format github` and `--format junit`: the same
/// commands, run here on a source that lost a field, fail and say where.
#[test]
fn the_readme_ci_commands_fail_a_broken_source() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let ci = &readme[readme.find("## In CI").expect("an In CI section")..];
    let commands: Vec<Vec<&str>> = ci
        .lines()
        .filter_map(|l| l.split("ingestor check --format").nth(1))
        .map(|rest| {
            let args = rest.split('>').next().unwrap_or_default();
            ["check", "--format"]
                .into_iter()
                .chain(args.split_whitespace())
                .collect()
        })
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let p = Project::tx();
    p.file("in/bank/jan.csv", GOOD);
    p.file("in/bank/feb.csv", "id,Date,Memo\nT2,2026-02-01,x\n");
    for args in commands {
        let out = p.run(&args).code(1);
        assert!(
            out.stdout.contains("in/bank/feb.csv"),
            "{args:?}: {}",
            out.stdout
        );
    }
}
