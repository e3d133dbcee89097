//! Local JSON files (`type = "json"`): an open-banking statement with its records under a
//! pointer, NDJSON exports, exact decimals, nested objects as columns.

use crate::common::{Project, TX_TAG};

fn project(reader: &str) -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file(
        "sources/ob.toml",
        format!(
            "tags = [\"tx\"]\nprimary_key = [\"transactionId\"]\n[fields]\n\
             date = \"bookingDate\"\namount = \"transactionAmount.amount\"\n\
             memo = \"remittanceInformationUnstructured\"\n[reader]\ntype = \"json\"\n{reader}\n"
        ),
    );
    p
}

/// Berlin Group's shape: `transactions.booked`, amounts as strings in an object.
const BOOKED: &str = r#"{
  "account": {"iban": "DE2310010010123456789"},
  "transactions": {
    "booked": [
      {"transactionId": "1234567", "bookingDate": "2026-03-01",
       "transactionAmount": {"currency": "EUR", "amount": "-256.67"},
       "creditorName": "John Miles", "remittanceInformationUnstructured": "Example 1"},
      {"transactionId": "1234568", "bookingDate": "2026-03-02",
       "transactionAmount": {"currency": "EUR", "amount": "343.01"},
       "debtorName": "Paul Simpson", "remittanceInformationUnstructured": null}
    ],
    "pending": [
      {"transactionId": "1234569", "transactionAmount": {"currency": "EUR", "amount": "100.03"}}
    ]
  }
}"#;

#[test]
fn an_open_banking_statement_loads_from_its_pointer() {
    let p = project("path = \"in\"\nrecords = \"/transactions/booked\"");
    p.file("in/march.json", BOOKED);
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["86.34"]
    );
    // Columns are the union in first-seen order; a key missing from a record is NULL.
    assert_eq!(
        p.texts("SELECT coalesce(\"creditorName\", '-') || '/' || coalesce(\"debtorName\", '-') FROM main.ob ORDER BY \"row_number\""),
        ["John Miles/-", "-/Paul Simpson"]
    );
    assert_eq!(
        p.texts("SELECT \"transactionAmount.currency\" FROM main.ob LIMIT 1"),
        ["EUR"]
    );
}

#[test]
fn ndjson_is_one_record_a_line_and_an_error_names_the_line() {
    let p = project("path = \"in\"");
    let line = |id: u32, amount: &str| {
        format!(
            r#"{{"transactionId": "{id}", "bookingDate": "2026-03-0{id}", "transactionAmount": {{"amount": {amount}}}, "remittanceInformationUnstructured": "x"}}"#
        )
    };
    p.file(
        "in/a.ndjson",
        format!("{}\n\n{}\n", line(1, "0.1"), line(2, "0.2")),
    );
    p.sync().code(0);
    // 0.1 + 0.2 as decimals, not floats.
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["0.30"]
    );
    p.file(
        "in/b.jsonl",
        format!("{}\n{}\n", line(3, "1"), &line(4, "2")[..40]),
    );
    p.sync()
        .code(3)
        .stderr_has(&["source `ob`", "`in/b.jsonl` line 2", "cut short"]);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 2);
}

#[test]
fn records_that_are_not_objects_and_a_missing_pointer_are_named() {
    let p = project("path = \"in\"\nrecords = \"/data\"");
    p.file("in/a.json", r#"{"items": []}"#);
    p.sync()
        .code(3)
        .stderr_has(&["`in/a.json`", "no records at `/data`"]);
    p.file("in/a.json", r#"{"data": [1, 2]}"#);
    p.sync()
        .code(3)
        .stderr_has(&["record 1: a record must be an object, this one is a number"]);
    p.file(
        "sources/ob.toml",
        "tags = [\"tx\"]\n[reader]\ntype = \"json\"\npath = \"in\"\nrecords = \"data\"\n",
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["records", "JSON pointer"]);
}

/// Issue 12: a value larger than DuckDB can safely take is refused before it reaches
/// DuckDB, for every reader: exit 3 naming the file, the record, the column and the limit.
#[test]
fn a_value_over_the_limit_is_refused_by_place() {
    let p = project("path = \"in\"\nrecords = \"/data\"");
    p.file("ingestor.toml", "[limits]\nmax_value_bytes = 1000\n");
    let big = "x".repeat(2000);
    p.file(
        "in/a.json",
        format!(
            r#"{{"data": [{{"transactionId": "1", "bookingDate": "2026-03-01", "transactionAmount": {{"amount": "1.00"}}, "remittanceInformationUnstructured": "ok"}},
                        {{"transactionId": "2", "bookingDate": "2026-03-02", "transactionAmount": {{"amount": "2.00"}}, "remittanceInformationUnstructured": "{big}"}}]}}"#
        ),
    );
    p.sync().code(3).stderr_has(&[
        "source `ob`",
        "`in/a.json`",
        "record 2: a value of 2000 bytes in column `remittanceInformationUnstructured`",
        "more than the limit of 1000 bytes (`max_value_bytes` under [limits]",
    ]);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );
    p.file("ingestor.toml", "[limits]\nmax_value_bytes = 4000\n");
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 2);
}
