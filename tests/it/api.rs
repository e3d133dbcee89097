//! API sources against a real HTTP server on 127.0.0.1 (`http::Server`): every
//! pagination style, retries, refused and missing credentials, bodies cut short, cursors
//! committed with the data, replays without the network, and no secret anywhere.

use std::sync::{Arc, Mutex};

use crate::common::{Out, Project, TX_TAG};
use crate::http::{Reply, Seen, Server};

const TOKEN: &str = "tok-5ecret-9f3a";

/// One transaction as the test bank serves it.
#[derive(Clone)]
struct Row {
    id: u32,
    booked: &'static str,
    amount: &'static str,
    memo: &'static str,
    updated: String,
}

impl Row {
    fn json(&self) -> String {
        format!(
            r#"{{"id": {}, "booked": "{}", "amount": {}, "memo": "{}", "updated_at": "{}", "account": {{"iban": "DE89 3704 0044"}}, "tags": ["a", 1]}}"#,
            self.id, self.booked, self.amount, self.memo, self.updated
        )
    }
}

fn rows() -> Vec<Row> {
    let r = |id, booked, amount, memo, day: u32| Row {
        id,
        booked,
        amount,
        memo,
        updated: format!("2026-01-0{day}T10:00:00Z"),
    };
    vec![
        r(1, "2026-01-01", "12.30", "Salary part", 1),
        r(2, "2026-01-02", "-4.05", "Coffee", 2),
        r(3, "2026-01-03", "100", "Refund", 3),
        r(4, "2026-01-04", "0.10", "Interest", 4),
        r(5, "2026-01-05", "-0.20", "Fee", 5),
    ]
}

/// The rows a request asks for: those updated at or after `updated_after` (inclusive,
/// as many APIs are), in id order.
fn selected(all: &[Row], req: &Seen) -> Vec<Row> {
    let after = req.param("updated_after");
    all.iter()
        .filter(|r| after.as_deref().is_none_or(|a| r.updated.as_str() >= a))
        .cloned()
        .collect()
}

fn array(rows: &[Row]) -> String {
    let items: Vec<String> = rows.iter().map(Row::json).collect();
    format!("[{}]", items.join(", "))
}

/// The bank: cursor pages of two rows, bearer auth, the incremental filter.
fn bank(all: Arc<Mutex<Vec<Row>>>) -> impl Fn(&Seen, usize) -> Reply + Send + Sync {
    move |req, _| {
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Reply::status(401);
        }
        let rows = selected(&all.lock().expect("rows"), req);
        let start: usize = req
            .param("cursor")
            .and_then(|c| c.strip_prefix('c').and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        let page = &rows[start.min(rows.len())..(start + 2).min(rows.len())];
        let next = if start + 2 < rows.len() {
            format!("\"c{}\"", start + 2)
        } else {
            "null".into()
        };
        Reply::json(format!(
            r#"{{"data": {}, "meta": {{"next_cursor": {next}}}}}"#,
            array(page)
        ))
    }
}

/// Rows 7 to 9, updated on the 7th to the 9th.
fn add_later_rows(all: &Mutex<Vec<Row>>) {
    all.lock().expect("rows").extend((7..=9).map(|id| Row {
        id,
        booked: "2026-01-07",
        amount: "1.00",
        memo: "Later",
        updated: format!("2026-01-0{id}T10:00:00Z"),
    }));
}

/// From now on the bank sends every page after the first cut in half.
fn cut_pages_after_the_first(server: &Server, all: &Arc<Mutex<Vec<Row>>>) {
    let good = bank(all.clone());
    server.answer(move |req, n| {
        let reply = good(req, n);
        if req.param("cursor").is_some() {
            let cut = reply.body.len() / 2;
            return Reply::json(String::from_utf8_lossy(&reply.body[..cut]).into_owned());
        }
        reply
    });
}

const BANK_API: &str = r#"
tags = ["tx"]
primary_key = ["id"]
[fields]
date = "booked"
amount = "amount"
memo = "memo"
[reader]
type = "api"
url = "BASE/v1/tx"
params = { limit = 2 }
headers = { Accept = "application/json" }
records = "/data"
paginate = { type = "cursor", param = "cursor", path = "/meta/next_cursor" }
auth = { type = "bearer", secret = "bank_token" }
incremental = { field = "updated_at", param = "updated_after" }
retries = 2
"#;

/// BANK_API without auth and without pagination: one open request.
fn one_page_source() -> String {
    BANK_API
        .replace(
            "auth = { type = \"bearer\", secret = \"bank_token\" }\n",
            "",
        )
        .replace(
            "paginate = { type = \"cursor\", param = \"cursor\", path = \"/meta/next_cursor\" }\n",
            "",
        )
}

fn project(server: &Server, source: &str) -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file(
        "sources/bank_api.toml",
        source.replace("BASE", &server.base),
    );
    p
}

fn with_token(p: &Project, args: &[&str]) -> Out {
    p.run_env(args, &[("INGESTOR_SECRET_BANK_TOKEN", TOKEN)])
}

fn sync_json(p: &Project) -> serde_json::Value {
    let out = with_token(p, &["sync", "--format", "json"]).code(0);
    serde_json::from_str(&out.stdout).expect("sync --format json")
}

fn unit(report: &serde_json::Value) -> &serde_json::Value {
    &report["sources"][0]["units"][0]
}

fn cursor(p: &Project) -> Vec<String> {
    p.texts("SELECT value FROM meta.state WHERE source = 'bank_api'")
}

#[test]
fn cursor_pages_load_exactly_and_the_next_sync_sends_the_saved_cursor() {
    let all = Arc::new(Mutex::new(rows()));
    let server = Server::start(bank(all.clone()));
    let p = project(&server, BANK_API);
    let report = sync_json(&p);
    assert_eq!(unit(&report)["status"], "loaded", "{report}");
    assert_eq!(unit(&report)["counts"]["rows_read"], 5);
    // Exact decimals: the JSON numbers' text, summed by DuckDB.
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["108.15"]
    );
    assert_eq!(
        p.texts("SELECT \"account.iban\" || ' ' || tags FROM main.bank_api WHERE id = '3'"),
        ["DE89 3704 0044 [\"a\",1]"]
    );
    let seen = server.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/v1/tx?limit=2",
            "/v1/tx?limit=2&cursor=c2",
            "/v1/tx?limit=2&cursor=c4"
        ]
    );
    assert!(seen
        .iter()
        .all(|s| s.header("accept") == Some("application/json")));
    let agent = seen[0].header("user-agent").unwrap_or("");
    assert!(agent.starts_with("ingestor/"), "{agent}");
    assert_eq!(cursor(&p), ["2026-01-05T10:00:00Z"]);

    // Row 3 changes and row 6 is new; the server re-sends row 5 (its boundary is
    // inclusive), which adds nothing.
    {
        let mut rows = all.lock().expect("rows");
        rows[2].amount = "99.99";
        rows[2].updated = "2026-01-06T08:00:00Z".into();
        rows.push(Row {
            id: 6,
            booked: "2026-01-06",
            amount: "7",
            memo: "New",
            updated: "2026-01-06T09:30:00Z".into(),
        });
    }
    server.clear();
    let report = sync_json(&p);
    let counts = &unit(&report)["counts"];
    assert_eq!(
        (
            &counts["new_rows"],
            &counts["changed_rows"],
            &counts["unchanged_rows"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{report}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].param("updated_after").as_deref(),
        Some("2026-01-05T10:00:00Z")
    );
    assert_eq!(cursor(&p), ["2026-01-06T09:30:00Z"]);
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["115.14"]
    );

    // The same answer from the same cursor is the same unit: skipped.
    let once = sync_json(&p);
    assert_eq!(unit(&once)["status"], "loaded");
    let twice = sync_json(&p);
    assert_eq!(unit(&twice)["status"], "skipped", "{twice}");
}

/// Five rows over pages of two, in one pagination style.
struct Style {
    name: &'static str,
    paginate: &'static str,
    handler: fn(&str, &Seen) -> Reply,
    requests: usize,
}

fn page_of(start: usize, size: usize) -> (Vec<Row>, bool) {
    let all = rows();
    let page = all[start.min(5)..(start + size).min(5)].to_vec();
    (page, start + size < 5)
}

const STYLES: &[Style] = &[
    Style {
        name: "link_header",
        paginate: r#"{ type = "link_header" }"#,
        handler: |base, req| {
            let p: usize = req.param("p").and_then(|p| p.parse().ok()).unwrap_or(1);
            let (rows, more) = page_of((p - 1) * 2, 2);
            let reply = Reply::json(format!(r#"{{"data": {}}}"#, array(&rows)));
            if more {
                let next = format!(
                    "<{base}/v1/tx?p={}>; rel=\"next\", <{base}/v1/tx?p=3>; rel=\"last\"",
                    p + 1
                );
                reply.with("Link", &next)
            } else {
                reply.with("Link", &format!("<{base}/v1/tx?p=1>; rel=\"first\""))
            }
        },
        requests: 3,
    },
    Style {
        name: "next_url",
        paginate: r#"{ type = "next_url", path = "/links/next" }"#,
        handler: |_, req| {
            let p: usize = req.param("p").and_then(|p| p.parse().ok()).unwrap_or(1);
            let (rows, more) = page_of((p - 1) * 2, 2);
            // Relative, as many APIs send it; null on the last page.
            let next = if more {
                format!("\"/v1/tx?p={}\"", p + 1)
            } else {
                "null".into()
            };
            Reply::json(format!(
                r#"{{"data": {}, "links": {{"next": {next}}}}}"#,
                array(&rows)
            ))
        },
        requests: 3,
    },
    Style {
        name: "page",
        paginate: r#"{ type = "page", param = "page", page_size = 2 }"#,
        handler: |_, req| {
            let p: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(0);
            let (rows, _) = page_of((p - 1) * 2, 2);
            Reply::json(format!(r#"{{"data": {}}}"#, array(&rows)))
        },
        requests: 3,
    },
    Style {
        name: "page without a page size (stops on an empty page)",
        paginate: r#"{ type = "page", param = "page", start = 0 }"#,
        handler: |_, req| {
            let p: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(9);
            let (rows, _) = page_of(p * 2, 2);
            Reply::json(format!(r#"{{"data": {}}}"#, array(&rows)))
        },
        requests: 4,
    },
    Style {
        name: "offset",
        paginate: r#"{ type = "offset", param = "offset", limit_param = "count", limit = 2 }"#,
        handler: |_, req| {
            let at: usize = req
                .param("offset")
                .and_then(|p| p.parse().ok())
                .unwrap_or(99);
            let n: usize = req.param("count").and_then(|p| p.parse().ok()).unwrap_or(0);
            let (rows, _) = page_of(at, n);
            Reply::json(format!(r#"{{"data": {}}}"#, array(&rows)))
        },
        requests: 3,
    },
    Style {
        name: "none",
        paginate: r#"{ type = "none" }"#,
        handler: |_, _| Reply::json(format!(r#"{{"data": {}}}"#, array(&rows()))),
        requests: 1,
    },
];

#[test]
fn every_pagination_style_loads_every_row_and_stops_by_its_rule() {
    for style in STYLES {
        let handler = style.handler;
        let server = Server::start(|_, _| Reply::status(500));
        let base = server.base.clone();
        server.answer(move |req, _| handler(&base, req));
        let source = format!(
            "tags = [\"tx\"]\nprimary_key = [\"id\"]\n[fields]\ndate = \"booked\"\n\
             amount = \"amount\"\nmemo = \"memo\"\n[reader]\ntype = \"api\"\n\
             url = \"BASE/v1/tx\"\nrecords = \"/data\"\npaginate = {}\n",
            style.paginate
        );
        let p = project(&server, &source);
        let out = p.sync();
        assert_eq!(out.code, 0, "{}: {out:?}", style.name);
        assert_eq!(
            p.texts("SELECT sum(amount)::VARCHAR || ' ' || count(*)::VARCHAR FROM main.tx"),
            ["108.15 5"],
            "{}",
            style.name
        );
        let seen = server.seen();
        assert_eq!(
            seen.len(),
            style.requests,
            "{}: {:?}",
            style.name,
            seen.iter().map(|s| &s.target).collect::<Vec<_>>()
        );
    }
}

#[test]
fn throttling_and_server_errors_are_retried_honouring_retry_after() {
    let server = Server::start(|_, n| match n {
        0 => Reply::status(429).with("Retry-After", "1"),
        1 => {
            // An HTTP date one second ahead.
            let at = chrono::Utc::now() + chrono::Duration::seconds(1);
            Reply::status(503).with(
                "Retry-After",
                &at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )
        }
        _ => Reply::json(format!(r#"{{"data": {}}}"#, array(&rows()))),
    });
    let source = one_page_source();
    let p = project(&server, &source);
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 5);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    // Retry-After is a floor: the retry came no sooner than the server asked.
    let waited = seen[1].at.duration_since(seen[0].at);
    assert!(waited.as_millis() >= 950, "retried after {waited:?}");
}

#[test]
fn a_server_that_keeps_failing_fails_the_unit_and_saves_nothing() {
    let server = Server::start(|_, _| Reply::status(503));
    let p = project(&server, &BANK_API.replace("retries = 2", "retries = 1"));
    let out = with_token(&p, &["sync"]).code(3);
    let url = format!("{}/v1/tx?limit=2", server.base);
    let out = out.stderr_has(&[
        "source `bank_api`",
        &url,
        "gave up after 2 attempts: HTTP 503",
    ]);
    assert!(!out.stderr.contains(TOKEN));
    assert_eq!(server.seen().len(), 2);
    assert!(cursor(&p).is_empty());
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );
}

#[test]
fn a_body_cut_short_mid_sync_keeps_the_vault_and_the_cursor_as_they_were() {
    let all = Arc::new(Mutex::new(rows()));
    let server = Server::start(bank(all.clone()));
    let p = project(&server, BANK_API);
    with_token(&p, &["sync"]).code(0);
    let before = p.texts("SELECT id || ' ' || amount::VARCHAR FROM main.bank_api ORDER BY id");
    // New rows arrive, but the second page of the next sync is cut short.
    add_later_rows(&all);
    cut_pages_after_the_first(&server, &all);
    let out = with_token(&p, &["sync"]).code(3);
    out.stderr_has(&[
        "source `bank_api`",
        "/v1/tx?limit=2",
        "(page 2)",
        "cut short",
    ]);
    assert_eq!(
        p.texts("SELECT id || ' ' || amount::VARCHAR FROM main.bank_api ORDER BY id"),
        before
    );
    assert_eq!(cursor(&p), ["2026-01-05T10:00:00Z"]);
    // Fixed, the next sync starts from the saved cursor and loads what was missed.
    server.answer(bank(all));
    with_token(&p, &["sync"]).code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 8);
    assert_eq!(cursor(&p), ["2026-01-09T10:00:00Z"]);
}

#[test]
fn a_refused_or_missing_token_is_named_and_never_shown() {
    let server = Server::start(bank(Arc::new(Mutex::new(rows()))));
    let p = project(&server, BANK_API);
    let wrong = "wrong-token-77";
    let out = p
        .run_env(&["sync"], &[("INGESTOR_SECRET_BANK_TOKEN", wrong)])
        .code(3)
        .stderr_has(&["refused the credentials of secret `bank_token`: HTTP 401"]);
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
    // Missing everywhere (an empty variable is not a value): exit 5, naming the
    // variable; no request is made.
    server.clear();
    p.run_env(&["sync"], &[("INGESTOR_SECRET_BANK_TOKEN", "")])
        .code(5)
        .stderr_has(&["INGESTOR_SECRET_BANK_TOKEN"]);
    p.run(&["sync"])
        .code(5)
        .stderr_has(&["secret `bank_token`", "INGESTOR_SECRET_BANK_TOKEN"]);
    assert!(server.seen().is_empty());
}

#[test]
fn a_repeated_cursor_or_too_many_pages_stops_with_an_error() {
    let server = Server::start(|_, _| {
        Reply::json(format!(
            r#"{{"data": {}, "meta": {{"next_cursor": "same"}}}}"#,
            array(&rows()[..1])
        ))
    });
    let source = BANK_API.replace(
        "auth = { type = \"bearer\", secret = \"bank_token\" }\n",
        "",
    );
    let p = project(&server, &source);
    p.sync()
        .code(3)
        .stderr_has(&["gave cursor `same` a second time"]);
    assert_eq!(server.seen().len(), 2);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );

    let counter = Arc::new(Mutex::new(0u32));
    server.answer(move |_, _| {
        let mut n = counter.lock().expect("n");
        *n += 1;
        Reply::json(format!(
            r#"{{"data": {}, "meta": {{"next_cursor": "c{n}"}}}}"#,
            array(&rows()[..1])
        ))
    });
    server.clear();
    p.file(
        "sources/bank_api.toml",
        format!("{}max_pages = 3\n", source.replace("BASE", &server.base)),
    );
    p.sync().code(3).stderr_has(&["more than max_pages = 3"]);
    assert_eq!(server.seen().len(), 3);
}

#[test]
fn a_lost_tagged_field_fails_the_sync_loudly() {
    // The API renamed `memo` to `description`: the tag's field is gone.
    let server = Server::start(|_, _| {
        Reply::json(
            r#"{"data": [{"id": 1, "booked": "2026-01-01", "amount": 1, "description": "x", "updated_at": "2026-01-01"}]}"#,
        )
    });
    let source = one_page_source();
    let p = project(&server, &source);
    p.sync().code(1).stderr_has(&["source `bank_api`", "memo"]);
    assert!(cursor(&p).is_empty());
}

#[test]
fn gzip_bodies_are_decoded_and_kept_decoded_in_the_lake() {
    use std::io::Write as _;
    let body = format!(r#"{{"data": {}}}"#, array(&rows()));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).expect("gzip");
    let zipped = gz.finish().expect("gzip");
    let server = Server::start(move |req, _| {
        assert!(req.header("accept-encoding").unwrap_or("").contains("gzip"));
        Reply {
            status: 200,
            headers: vec![("Content-Encoding".into(), "gzip".into())],
            body: zipped.clone(),
        }
    });
    let source = one_page_source();
    let p = project(&server, &source);
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 5);
    let kept: Vec<Vec<u8>> = p
        .lake_files()
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    assert!(
        kept.iter().any(|k| *k == body.as_bytes()),
        "the body is kept as JSON"
    );
}

/// The dry run shows the first request, secrets masked, and makes none.
#[test]
fn a_dry_run_shows_the_first_request_without_its_secret() {
    let server = Server::start(bank(Arc::new(Mutex::new(rows()))));
    let p = project(&server, BANK_API);
    let out = with_token(&p, &["sync", "--dry-run"]).code(0);
    let want = format!(
        "GET {}/v1/tx?limit=2 (Accept: application/json; Authorization: Bearer ***)",
        server.base
    );
    out.stdout_has(&[&want]);
    assert!(server.seen().is_empty());
}

/// Everything a user can see or keep, searched for the token: outputs, the vault file,
/// the lake, every file in the project.
fn assert_nowhere(p: &Project, outputs: &[Out], secret: &str) {
    for o in outputs {
        assert!(
            !o.stdout.contains(secret) && !o.stderr.contains(secret),
            "{o:?}"
        );
    }
    let mut stack = vec![p.dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "the secret is in {}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn rebuild_replays_api_units_offline_and_the_secret_is_nowhere() {
    let all = Arc::new(Mutex::new(rows()));
    let server = Server::start(bank(all.clone()));
    let p = project(&server, BANK_API);
    let mut outputs = vec![with_token(&p, &["sync"]).code(0)];
    all.lock().expect("rows")[0].amount = "12.31";
    all.lock().expect("rows")[0].updated = "2026-01-07T00:00:00Z".into();
    outputs.push(with_token(&p, &["sync"]).code(0));
    let rows_sql = "SELECT id || ' ' || amount::VARCHAR || ' ' || load_ts::VARCHAR FROM main.bank_api ORDER BY ALL";
    let before = p.texts(rows_sql);
    assert_eq!(before.len(), 6);
    server.clear();
    outputs.push(p.run(&["rebuild"]).code(0));
    assert!(server.seen().is_empty(), "rebuild made requests");
    assert_eq!(p.texts(rows_sql), before);
    assert_eq!(cursor(&p), ["2026-01-07T00:00:00Z"]);
    for args in [
        vec!["status"],
        vec!["runs"],
        vec!["check"],
        vec!["lake", "verify"],
        vec!["sql", "SELECT * FROM meta.loads"],
    ] {
        outputs.push(with_token(&p, &args).code(0));
    }
    outputs.push(with_token(&p, &["sync", "--dry-run", "-v"]));
    assert_nowhere(&p, &outputs, TOKEN);
}

#[test]
fn a_query_secret_is_masked_in_every_url_kept() {
    let server = Server::start(|req, _| {
        if req.param("key").as_deref() != Some(TOKEN) {
            return Reply::status(403);
        }
        Reply::json(format!(r#"{{"data": {}}}"#, array(&rows())))
    });
    let source = BANK_API
        .replace(
            "paginate = { type = \"cursor\", param = \"cursor\", path = \"/meta/next_cursor\" }\n",
            "",
        )
        .replace(
            "auth = { type = \"bearer\", secret = \"bank_token\" }",
            "auth = { type = \"query\", param = \"key\", secret = \"bank_token\" }",
        );
    let p = project(&server, &source);
    let outputs = vec![
        with_token(&p, &["sync", "-v"]).code(0),
        with_token(&p, &["sync", "--dry-run"]).code(0),
        with_token(&p, &["runs"]).code(0),
    ];
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 5);
    assert!(outputs[1].stdout.contains("key=***"), "{:?}", outputs[1]);
    assert_nowhere(&p, &outputs, TOKEN);
}

#[test]
fn check_reads_the_last_sync_from_the_lake_and_makes_no_request() {
    let server = Server::start(bank(Arc::new(Mutex::new(rows()))));
    let p = project(&server, BANK_API);
    p.run(&["check"]).code(0).stderr_has(&["not synced yet"]);
    with_token(&p, &["sync"]).code(0);
    server.clear();
    p.run(&["check"]).code(0).stdout_has(&["ok", "bank_api"]);
    // The definition now wants a column the API does not send.
    p.file(
        "sources/bank_api.toml",
        BANK_API
            .replace("BASE", &server.base)
            .replace("memo = \"memo\"", "memo = \"purpose\""),
    );
    p.run(&["check"]).code(1).stdout_has(&["purpose"]);
    assert!(server.seen().is_empty());
}

#[test]
fn the_shipped_api_example_is_a_valid_source() {
    let p = Project::shipped();
    std::fs::copy(
        p.path("sources/bank_api.toml.example"),
        p.path("sources/bank_api.toml"),
    )
    .expect("copy the example");
    p.run(&["check", "bank_api"])
        .code(0)
        .stderr_has(&["not synced yet"]);
    p.run(&["sync", "bank_api", "--dry-run"]).code(0).stdout_has(&[
        "GET https://api.example.com/v1/accounts/main/transactions?limit=100\
         &updated_after=2026-01-01T00%3A00%3A00Z (Accept: application/json; Authorization: Bearer ***)",
    ]);
}

#[test]
fn basic_and_header_auth_send_the_secret_as_the_server_expects() {
    // `user:tok-5ecret-9f3a` in base64, as RFC 7617 writes it.
    let basic = "Basic dXNlcjp0b2stNWVjcmV0LTlmM2E=";
    for (auth, check) in [
        (
            r#"auth = { type = "basic", username = "user", secret = "bank_token" }"#,
            (|req: &Seen| req.header("authorization") == Some("Basic dXNlcjp0b2stNWVjcmV0LTlmM2E="))
                as fn(&Seen) -> bool,
        ),
        (
            r#"auth = { type = "header", name = "X-Api-Key", secret = "bank_token" }"#,
            |req: &Seen| req.header("x-api-key") == Some(TOKEN),
        ),
    ] {
        let server = Server::start(move |req, _| {
            if !check(req) {
                return Reply::status(401);
            }
            Reply::json(format!(r#"{{"data": {}}}"#, array(&rows())))
        });
        let source = one_page_source().replace("retries = 2", &format!("retries = 2\n{auth}"));
        let p = project(&server, &source);
        let out = with_token(&p, &["sync"]).code(0);
        assert_eq!(p.int("SELECT count(*) FROM main.tx"), 5, "{auth}");
        assert!(!out.stdout.contains(basic) && !out.stderr.contains(TOKEN));
    }
}

#[test]
fn a_body_that_is_not_json_names_the_url_and_the_page() {
    // A login page or a proxy's error page, sent with 200.
    let server = Server::start(|_, _| Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: b"<!DOCTYPE html><html><body>Please log in</body></html>".to_vec(),
    });
    let p = project(&server, &one_page_source());
    p.sync().code(3).stderr_has(&[
        &format!("`{}/v1/tx?limit=2 (page 1)` line 1", server.base),
        "expected a value, found `<`",
    ]);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.loads WHERE status = 'loaded'"),
        0
    );
}

#[test]
fn retries_stop_at_max_retry_wait() {
    let server = Server::start(|_, _| Reply::status(429).with("Retry-After", "30"));
    let source = one_page_source().replace("retries = 2", "retries = 5\nmax_retry_wait = \"5s\"");
    let p = project(&server, &source);
    p.sync().code(3).stderr_has(&[
        "gave up after 1 attempt: HTTP 429",
        "would pass max_retry_wait",
    ]);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_sync_killed_between_pages_changes_nothing_and_the_next_one_loads_it_all() {
    let all = Arc::new(Mutex::new(rows()));
    let server = Server::start(bank(all.clone()));
    let p = project(&server, BANK_API);
    with_token(&p, &["sync"]).code(0);
    let before = p.texts("SELECT id || ' ' || amount::VARCHAR FROM main.bank_api ORDER BY id");
    all.lock().expect("rows").extend((6..=9).map(|id| Row {
        id,
        booked: "2026-01-09",
        amount: "2.50",
        memo: "Later",
        updated: format!("2026-01-0{id}T12:00:00Z"),
    }));
    // The second page hangs until the sync is killed.
    let good = bank(all.clone());
    server.answer(move |req, n| {
        if req.param("cursor").is_some() {
            std::thread::sleep(std::time::Duration::from_secs(20));
        }
        good(req, n)
    });
    server.clear();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ingestor"))
        .arg("-C")
        .arg(p.dir.path())
        .arg("sync")
        .env("INGESTOR_SECRET_BANK_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let waited = std::time::Instant::now();
    while server.seen().len() < 2 {
        assert!(
            waited.elapsed().as_secs() < 30,
            "the second page was never asked for"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL: no cleanup runs
    let _ = child.wait();
    assert_eq!(
        p.texts("SELECT id || ' ' || amount::VARCHAR FROM main.bank_api ORDER BY id"),
        before
    );
    assert_eq!(cursor(&p), ["2026-01-05T10:00:00Z"]);
    server.answer(bank(all));
    with_token(&p, &["sync"]).code(0);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 9);
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["118.15"]
    );
    assert_eq!(cursor(&p), ["2026-01-09T12:00:00Z"]);
    assert_eq!(
        p.int("SELECT count(*) FROM meta.runs WHERE status = 'running'"),
        0
    );
    p.run(&["lake", "verify"]).code(0);
}

/// Issue 12: a failed sync's bodies are not referred to by any load; `lake gc` removes
/// them and keeps every page a loaded sync names, so the vault still rebuilds offline.
#[test]
fn lake_gc_keeps_the_pages_of_loaded_syncs_and_drops_those_of_failed_ones() {
    let all = Arc::new(Mutex::new(rows()));
    let server = Server::start(bank(all.clone()));
    let p = project(&server, BANK_API);
    with_token(&p, &["sync"]).code(0);
    let kept = p.lake_files().len();
    // Three pages and their list.
    assert_eq!(kept, 4);
    // The second page of the next sync is cut short.
    add_later_rows(&all);
    cut_pages_after_the_first(&server, &all);
    with_token(&p, &["sync"]).code(3);
    assert_eq!(
        p.lake_files().len(),
        kept + 1,
        "the failed sync's first page"
    );
    p.run(&["lake", "gc"]).code(0).stdout_has(&["1 object(s)"]);
    assert_eq!(p.lake_files().len(), kept);
    server.clear();
    p.run(&["rebuild"]).code(0);
    assert!(server.seen().is_empty());
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 5);
}

/// A next link to another origin is not followed with the credentials.
#[test]
fn credentials_never_follow_a_next_link_to_another_origin() {
    let server = Server::start(|req, _| {
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Reply::status(401);
        }
        Reply::json(format!(
            r#"{{"data": {}, "links": {{"next": "http://localhost:1/steal"}}}}"#,
            array(&rows()[..1])
        ))
    });
    let source = BANK_API.replace(
        "paginate = { type = \"cursor\", param = \"cursor\", path = \"/meta/next_cursor\" }",
        "paginate = { type = \"next_url\", path = \"/links/next\" }",
    );
    let p = project(&server, &source);
    let out = with_token(&p, &["sync"])
        .code(3)
        .stderr_has(&["another origin", "credentials are not sent there"]);
    assert!(!out.stderr.contains(TOKEN));
    assert_eq!(server.seen().len(), 1);
    assert!(cursor(&p).is_empty());
}
