//! The excel reader on workbooks written by LibreOffice (tests/fixtures/excel).

use crate::common::Project;

fn fixture(name: &str) -> Vec<u8> {
    crate::common::excel_fixture(name)
}

/// A project with tag `tx` and source `stmt` reading `in/` with extra reader options.
fn project(reader_options: &str, extra: &str) -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", crate::common::TX_TAG);
    p.file(
        "sources/stmt.toml",
        format!(
            "tags = [\"tx\"]\n{extra}\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Description\"\n\
             [reader]\ntype = \"excel\"\npath = \"in\"\n{reader_options}\n"
        ),
    );
    std::fs::create_dir_all(p.path("in")).expect("mkdir");
    p
}

const JANUARY: [&str; 7] = [
    "2026-01-02 -3.50 Coffee Roasters",
    "2026-01-03 -4.75 Grocery Store",
    "2026-01-04 -6.00 Bookshop",
    "2026-01-05 -7.25 Pharmacy",
    "2026-01-06 -8.50 Coffee Roasters",
    "2026-01-07 -9.75 Grocery Store",
    "2026-01-20 7.00 Refund (formula)",
];

fn rows(p: &Project) -> Vec<String> {
    p.texts("SELECT strftime(date, '%Y-%m-%d') || ' ' || amount::VARCHAR || ' ' || memo FROM main.tx ORDER BY date, memo")
}

#[test]
fn every_format_reads_the_same_table() {
    for ext in ["xlsx", "xlsm", "xls", "ods"] {
        let p = project("", "");
        p.file(
            &format!("in/statement.{ext}"),
            fixture(&format!("statement.{ext}")),
        );
        p.sync().code(0);
        assert_eq!(rows(&p), JANUARY, "{ext}");
        // The formula's cached result (twice the first amount, negated) is loaded.
        // Provenance is the sheet row: title, blank row and header above the table.
        assert_eq!(
            p.texts("SELECT min(\"row_number\")::VARCHAR || '-' || max(\"row_number\")::VARCHAR FROM main.stmt"),
            ["4-10"],
            "{ext}"
        );
        // Types from every cell: booleans, a mixed column kept as text, a blank header.
        let types = p.texts(
            "SELECT column_name || ':' || data_type FROM information_schema.columns \
             WHERE table_schema = 'vault' AND table_name LIKE 'sat_stmt%' AND column_name IN ('Paid', 'Ref', 'column_F') \
             ORDER BY column_name",
        );
        assert_eq!(
            types,
            ["Paid:BOOLEAN", "Ref:VARCHAR", "column_F:VARCHAR"],
            "{ext}"
        );
        assert_eq!(
            p.texts("SELECT \"Ref\" FROM main.stmt ORDER BY \"row_number\" LIMIT 3"),
            ["R-0", "1001", "1002"],
            "{ext}: a column mixing numbers and text keeps every value"
        );
    }
}

#[test]
fn the_same_workbook_in_another_format_adds_nothing() {
    let p = project("", "");
    p.file("in/a.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    p.file("in/b.ods", fixture("statement.ods"));
    p.file("in/c.xls", fixture("statement.xls"));
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.stmt"), 7);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        3
    );
}

#[test]
fn sheets_by_name_index_and_several_at_once() {
    let p = project("sheet = \"Log\"", "");
    p.file(
        "sources/stmt.toml",
        "tags = [\"log\"]\n[reader]\ntype = \"excel\"\npath = \"in\"\nsheet = 2\n",
    );
    p.file(
        "tags/log.toml",
        "[fields]\nStarted = { type = \"timestamp\" }\nWeight = { type = \"decimal(6,1)\" }\n",
    );
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT strftime(\"Started\", '%Y-%m-%d %H:%M:%S') || ' ' || \"Reps\"::VARCHAR || ' ' || \"Weight\"::VARCHAR FROM main.stmt ORDER BY 1"),
        ["2026-01-05 07:10:00 8 60.0", "2026-01-07 07:12:30 8 62.5", "2026-01-09 07:11:00 10 45.0"]
    );
    assert_eq!(
        p.texts("SELECT data_type FROM information_schema.columns WHERE table_schema = 'vault' AND column_name = 'Reps'"),
        ["BIGINT"]
    );

    let p = project("sheets = [\"January\", \"February\"]", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT _sheet || ':' || count(*)::VARCHAR FROM main.stmt GROUP BY _sheet ORDER BY _sheet"),
        ["February:4", "January:7"]
    );

    // "*" takes every sheet, and the Log sheet has another shape.
    let p = project("sheets = \"*\"", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync()
        .code(3)
        .stderr_has(&["sheet `Log` has columns", "one shape"]);

    let p = project("sheet = \"March\"", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync()
        .code(3)
        .stderr_has(&["no sheet `March`", "January, February, Log"]);
}

#[test]
fn header_row_and_range_can_be_given() {
    let p = project("header_row = 3\nrange = \"A3:C6\"", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    assert_eq!(rows(&p), JANUARY[..3]);
    assert_eq!(
        p.texts("SELECT column_name FROM information_schema.columns WHERE table_schema = 'vault' AND table_name LIKE 'sat_stmt%' AND ordinal_position > 7 ORDER BY ordinal_position"),
        ["Date", "Description", "Amount"]
    );
    // A header row that is not a table's header is still taken as told.
    let p = project("header_row = 1", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.run(&["check"])
        .code(1)
        .stdout_has(&["column `Date` is missing"]);
}

#[test]
fn dates_in_the_1904_system() {
    let p = project("", "");
    p.file("in/dates1904.xlsx", fixture("dates1904.xlsx"));
    p.sync().code(0);
    assert_eq!(rows(&p), JANUARY[..3]);
}

#[test]
fn error_cells_are_reported_not_nulled() {
    let p = project("", "");
    p.file("in/errors.xlsx", fixture("errors.xlsx"));
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync()
        .code(3)
        .stderr_has(&["in/errors.xlsx", "sheet `January` cell C7", "#DIV/0!"]);
    // The other workbook still loaded; nothing of the broken one did.
    assert_eq!(p.int("SELECT count(*) FROM main.stmt"), 7);
}

#[test]
fn a_changed_workbook_adds_only_the_changed_rows() {
    let p = project("", "primary_key = [\"Ref\"]");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    p.file("in/statement.xlsx", fixture("statement-v2.xlsx"));
    let out = p.run(&["sync", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let counts = &doc["sources"][0]["units"][0]["counts"];
    assert_eq!(counts["new_rows"], 1, "{counts}");
    assert_eq!(counts["changed_rows"], 1, "{counts}");
    assert_eq!(counts["unchanged_rows"], 6, "{counts}");
    assert_eq!(
        p.texts("SELECT amount::VARCHAR FROM main.stmt WHERE \"Ref\" = '1001' ORDER BY load_ts"),
        ["-4.75", "-5.25"]
    );
}

#[test]
fn a_deleted_tagged_column_fails_check() {
    let p = project("", "");
    p.file("in/statement.xlsx", fixture("statement-no-amount.xlsx"));
    p.run(&["check"]).code(1).stdout_has(&[
        "tag `tx` field `amount`",
        "`Amount` is missing",
        "in/statement.xlsx",
    ]);
    p.sync().code(1);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 0);
}

#[test]
fn a_value_that_does_not_cast_names_the_cell() {
    // `Ref` mixes numbers and text; as a decimal field, `R-0` cannot be one.
    let p = project("", "");
    p.file(
        "sources/stmt.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Ref\"\nmemo = \"Description\"\n\
         [reader]\ntype = \"excel\"\npath = \"in\"\n",
    );
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync()
        .code(1)
        .stderr_has(&["sheet `January` cell E4", "column `Ref`", "\"R-0\""]);
}

#[test]
fn protected_truncated_and_foreign_files_fail_their_unit_with_exit_3() {
    for (name, needle) in [
        ("protected.xlsx", "password protected"),
        ("truncated.xlsx", "not a readable xlsx workbook"),
        ("not-a-workbook.xlsx", "not a readable xlsx workbook"),
        // Issue 12: a shared-string index out of range made calamine panic (exit 101).
        ("bad-shared-string.xlsx", "the reader failed on it"),
        // Issue 12: two cells far apart made calamine ask for 512 GB (exit 134).
        (
            "far-cells.xlsx",
            "spans A1:XFD1048576 (17179869184 cells), more than the limit",
        ),
    ] {
        let p = project("", "");
        p.file(&format!("in/{name}"), fixture(name));
        p.file("in/statement.ods", fixture("statement.ods"));
        p.sync().code(3).stderr_has(&[name, needle]);
        assert_eq!(
            p.int("SELECT count(*) FROM main.stmt"),
            7,
            "{name}: the good file loads"
        );
    }
}

/// Issue 10: files named `.xls` that are really something else got "Invalid OLE signature".
#[test]
fn an_xls_name_is_read_for_what_the_file_really_is() {
    // A CSV export named .xls, as banks send them: read as CSV.
    let p = project("", "");
    p.file(
        "in/export.xls",
        "Date;Amount;Description\n2026-01-02;-3.50;Coffee\n2026-01-03;-4.75;Bus\n",
    );
    p.sync().code(0).stdout_has(&["loaded     in/export.xls"]);
    assert_eq!(
        p.texts("SELECT amount::VARCHAR FROM main.tx ORDER BY date"),
        ["-3.50", "-4.75"]
    );
    assert_eq!(
        p.texts("SELECT \"row_number\"::VARCHAR FROM main.stmt ORDER BY 1"),
        ["2", "3"]
    );
    // A real xlsx under an .xls name: read as the workbook it is.
    let p = project("", "");
    p.file("in/statement.xls", fixture("statement.xlsx"));
    p.sync().code(0);
    assert_eq!(rows(&p), JANUARY);
    // Formats that cannot be read are named.
    for (bytes, says) in [
        (
            b"<html><body><table><tr><td>Date</td></tr></table></body></html>".to_vec(),
            "is an HTML page",
        ),
        (
            b"<?xml version=\"1.0\"?>\n<Workbook xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\">"
                .to_vec(),
            "is an Excel 2003 XML spreadsheet",
        ),
        (
            vec![0x09, 0x00, 0x04, 0x00, 0x02, 0x00, 0x10, 0x00, 0x01, 0x00],
            "is an Excel 2.x to 4.x workbook",
        ),
    ] {
        let p = project("", "");
        p.file("in/old.xls", bytes);
        p.sync()
            .code(3)
            .stderr_has(&["in/old.xls", says, "save it as .xlsx"]);
    }
}

/// Issue 10: sheets without a header, and rows that are not data.
#[test]
fn sheets_without_a_header_and_rows_that_are_not_data() {
    // The data block alone, named by the source.
    let p = project(
        "range = \"A4:C10\"\nheader = false\ncolumns = [\"Date\", \"Description\", \"Amount\"]",
        "",
    );
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    assert_eq!(rows(&p), JANUARY);
    // A row pattern drops rows; `end` stops at a row and drops it and all below.
    let p = project("skip_rows_matching = ['Refund']\nend = 'Pharmacy'", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(0);
    assert_eq!(rows(&p), JANUARY[..3]);
    // `columns` that do not fit the block are named, as is `columns` without `header = false`.
    let p = project(
        "range = \"A4:E10\"\nheader = false\ncolumns = [\"Date\"]",
        "",
    );
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync()
        .code(3)
        .stderr_has(&["has 5 columns but `columns` names 1"]);
    let p = project("columns = [\"Date\"]", "");
    p.run(&["check"])
        .code(2)
        .stderr_has(&["columns", "header = false"]);
}

/// Issue 12: a shared-string table is read whole by calamine; one larger than the limit
/// is refused before it is unpacked, naming the limit and how to raise it.
#[test]
fn a_shared_string_table_over_the_limit_is_refused_before_it_is_read() {
    let p = project("max_shared_strings = \"1KB\"", "");
    p.file("in/statement.xlsx", fixture("statement.xlsx"));
    p.sync().code(3).stderr_has(&[
        "source `stmt`",
        "`in/statement.xlsx`",
        "unpacks to 1380 bytes, more than the limit of 1000 bytes",
        "`max_shared_strings` under [reader] raises it",
    ]);
    p.file(
        "sources/stmt.toml",
        std::fs::read_to_string(p.path("sources/stmt.toml"))
            .expect("source")
            .replace("\"1KB\"", "\"2KB\""),
    );
    p.sync().code(0);
    p.file(
        "sources/stmt.toml",
        std::fs::read_to_string(p.path("sources/stmt.toml"))
            .expect("source")
            .replace("\"2KB\"", "\"lots\""),
    );
    p.run(&["check"])
        .code(2)
        .stderr_has(&["max_shared_strings"]);
}

/// Issue 10: rows hidden in a workbook (a filter's leftovers, helper rows) are not data,
/// unless `hidden_rows = "keep"`.
#[test]
fn hidden_rows_are_skipped_unless_kept() {
    let workbook = crate::common::xlsx_with_rows(&[
        (
            1,
            false,
            &[("A", "Date"), ("B", "Amount"), ("C", "Description")],
        ),
        (
            2,
            false,
            &[("A", "2026-01-02"), ("B", "-3.5"), ("C", "Coffee")],
        ),
        (
            3,
            true,
            &[("A", "2026-01-03"), ("B", "-100"), ("C", "Hidden helper")],
        ),
        (
            4,
            false,
            &[("A", "2026-01-04"), ("B", "-6"), ("C", "Bookshop")],
        ),
    ]);
    let p = project("", "");
    p.file("in/book.xlsx", &workbook);
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT memo || ' ' || \"row_number\" FROM main.tx JOIN main.stmt USING (hk) ORDER BY \"row_number\""),
        ["Coffee 2", "Bookshop 4"]
    );
    let kept = project("hidden_rows = \"keep\"", "");
    kept.file("in/book.xlsx", &workbook);
    kept.sync().code(0);
    assert_eq!(kept.int("SELECT count(*) FROM main.tx"), 3);
    let bad = project("hidden_rows = \"hide\"", "");
    bad.run(&["check"]).code(2).stderr_has(&["hidden_rows"]);
}

/// Issue 10: time-only cells are TIME, not a moment on 1899-12-31; durations are text as
/// the sheet shows them, in every format LibreOffice writes.
#[test]
fn time_cells_are_times_of_day_and_durations_read_as_shown() {
    for ext in ["xlsx", "xls", "ods"] {
        let p = Project::new();
        p.file(
            "tags/workout.toml",
            "[fields]\nday = { type = \"date\" }\nstart = { type = \"time\" }\n\
             duration = { type = \"text\" }\n",
        );
        p.file(
            "sources/log.toml",
            "tags = [\"workout\"]\n[fields]\nday = \"Date\"\nstart = \"Start\"\nduration = \"Duration\"\n\
             [reader]\ntype = \"excel\"\npath = \"in\"\n",
        );
        p.file(
            &format!("in/workouts.{ext}"),
            fixture(&format!("workouts.{ext}")),
        );
        p.sync().code(0);
        assert_eq!(
            p.texts(
                "SELECT strftime(day, '%Y-%m-%d') || ' ' || start::VARCHAR || ' ' || duration \
                 FROM main.workout ORDER BY day"
            ),
            [
                "2026-01-05 07:10:00 00:52:30",
                "2026-01-07 18:45:00 01:23:45",
                "2026-01-10 06:00:00 26:10:00",
            ],
            "{ext}"
        );
        // The satellite keeps the cell's own type.
        assert_eq!(
            p.texts(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'vault' \
                 AND table_name LIKE 'sat_log%' AND column_name = 'Start'"
            ),
            ["TIME"],
            "{ext}"
        );
        // Loaded again from another format of the same workbook: nothing is new.
        if ext == "xlsx" {
            p.file("in/workouts.ods", fixture("workouts.ods"));
            p.sync().code(0);
            assert_eq!(p.int("SELECT count(*) FROM main.workout"), 3);
        }
    }
}

/// Issue 10: dates without a year (`05 Dec`) take it from the statement period written
/// above the table.
#[test]
fn dates_without_a_year_take_it_from_the_statement_period_above_the_table() {
    let p = project(
        "date_format = \"%d %b\"\n\
         period = 'Statement period\\s+(?P<start>\\d\\d/\\d\\d/\\d{4}) - (?P<end>\\d\\d/\\d\\d/\\d{4})'\n\
         period_format = \"%d/%m/%Y\"",
        "",
    );
    let sheet = |period: &str| {
        crate::common::xlsx_with_rows(&[
            (1, false, &[("A", "Visa card statement")]),
            (2, false, &[("A", "Statement period"), ("B", period)]),
            (
                4,
                false,
                &[("A", "Date"), ("B", "Description"), ("C", "Amount")],
            ),
            (
                5,
                false,
                &[("A", "12 Dec"), ("B", "Booked late"), ("C", "-9.99")],
            ),
            (
                6,
                false,
                &[("A", "16 Dec"), ("B", "Coffee"), ("C", "-3.50")],
            ),
            (
                7,
                false,
                &[("A", "03 Jan"), ("B", "Train"), ("C", "-27.00")],
            ),
        ])
    };
    p.file("in/card.xlsx", sheet("15/12/2024 - 14/01/2025"));
    p.sync().code(0);
    assert_eq!(
        rows(&p),
        [
            "2024-12-12 -9.99 Booked late",
            "2024-12-16 -3.50 Coffee",
            "2025-01-03 -27.00 Train",
        ]
    );
    // A workbook whose period is missing fails, saying where it was looked for.
    p.file("in/other.xlsx", sheet("soon"));
    p.sync().code(3).stderr_has(&[
        "in/other.xlsx",
        "`period` matches nothing in the rows above sheet `Bookings & more`'s header",
    ]);
    p.remove("in/other.xlsx");
    // Sheets stating different periods are one unit with one period: refused, rather
    // than reading December's `05 Dec` in January's period (as 2023-12-05).
    let head = [("A", "Date"), ("B", "Description"), ("C", "Amount")];
    let (jan_period, dec_period) = (
        [("A", "Statement period"), ("B", "01/01/2024 - 31/01/2024")],
        [("A", "Statement period"), ("B", "01/12/2024 - 31/12/2024")],
    );
    let (jan_row, dec_row) = (
        [("A", "05 Jan"), ("B", "Coffee"), ("C", "-3.50")],
        [("A", "05 Dec"), ("B", "Coffee"), ("C", "-3.50")],
    );
    let jan = [
        (2, false, &jan_period[..]),
        (4, false, &head[..]),
        (5, false, &jan_row[..]),
    ];
    let dec = [
        (2, false, &dec_period[..]),
        (4, false, &head[..]),
        (5, false, &dec_row[..]),
    ];
    p.file(
        "sources/stmt.toml",
        std::fs::read_to_string(p.path("sources/stmt.toml"))
            .expect("source")
            .replace("path = \"in\"", "path = \"in\"\nsheets = \"*\""),
    );
    p.file(
        "in/year.xlsx",
        crate::common::xlsx_with_sheets(&[("Jan", &jan), ("Dec", &dec)]),
    );
    p.sync().code(3).stderr_has(&[
        "in/year.xlsx",
        "sheet `Jan` states the period 2024-01-01 to 2024-01-31 and sheet `Dec` 2024-12-01 to 2024-12-31",
    ]);
}

/// Issue 10: placeholders such as `--` in a number column (Garmin, Schwab) are no value
/// when the source says so, so the column keeps its type.
#[test]
fn null_values_let_a_column_of_numbers_and_placeholders_be_numbers() {
    let p = project("null_values = [\"--\"]", "");
    p.file(
        "in/log.xlsx",
        crate::common::xlsx_with_rows(&[
            (
                1,
                false,
                &[
                    ("A", "Date"),
                    ("B", "Description"),
                    ("C", "Amount"),
                    ("D", "Reps"),
                ],
            ),
            (
                2,
                false,
                &[("A", "2026-01-02"), ("B", "Squat"), ("C", "-1"), ("D", "8")],
            ),
            (
                3,
                false,
                &[("A", "2026-01-03"), ("B", "Run"), ("C", "-2"), ("D", "--")],
            ),
        ]),
    );
    p.sync().code(0);
    assert_eq!(
        p.texts(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'vault' \
             AND table_name LIKE 'sat_stmt%' AND column_name = 'Reps'"
        ),
        ["BIGINT"]
    );
    assert_eq!(
        p.texts("SELECT coalesce(\"Reps\"::VARCHAR, 'NULL') FROM main.stmt ORDER BY \"Date\""),
        ["8", "NULL"]
    );
}

/// Issue 10: a hand-kept sheet whose Date column holds date cells and a date typed in as
/// text is a date column when the text reads in the source's `date_format`.
#[test]
fn a_column_of_date_cells_and_text_dates_is_a_date_column() {
    let p = project("", "");
    p.file("in/cash.xlsx", fixture("mixed-dates.xlsx"));
    // Without a format for the typed date, it is not a date: the file fails naming it.
    p.sync()
        .code(1)
        .stderr_has(&["in/cash.xlsx", "cell A3", "06.01.2026"]);
    p.file(
        "sources/stmt.toml",
        std::fs::read_to_string(p.path("sources/stmt.toml"))
            .expect("source")
            .replace("path = \"in\"", "path = \"in\"\ndate_format = \"%d.%m.%Y\""),
    );
    p.sync().code(0);
    assert_eq!(
        rows(&p),
        [
            "2026-01-05 -3.20 Bakery",
            "2026-01-06 -1.50 Typed by hand",
            "2026-01-07 -12.00 Market",
        ]
    );
    assert_eq!(
        p.texts(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'vault' \
             AND table_name LIKE 'sat_stmt%' AND column_name = 'Date'"
        ),
        ["DATE"]
    );
}
