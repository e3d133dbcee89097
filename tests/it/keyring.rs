//! Secrets in the real OS keyring (Secret Service over D-Bus), through `ingestor secret`
//! and a sync whose token comes only from the keyring.
//!
//! CI runs the tests under `dbus-run-session` with gnome-keyring unlocked (.ci/run).
//! Without a D-Bus session this test fails, saying how to run it; it is skipped only when
//! asked (`INGESTOR_SKIP_KEYRING=1`, never in CI), and then says so on the terminal.

use std::sync::{Arc, Mutex};

use crate::common::{Out, Project, TX_TAG};
use crate::http::{Reply, Server};

fn keyring_session() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return true;
    }
    let skip = std::env::var_os("INGESTOR_SKIP_KEYRING").is_some_and(|v| v != "0");
    assert!(
        skip && std::env::var_os("CI").is_none(),
        "this test needs an OS keyring: run the tests under `dbus-run-session` with \
         gnome-keyring unlocked, as .ci/run does, or set INGESTOR_SKIP_KEYRING=1 to skip \
         it (never in CI)"
    );
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ =
            std::io::Write::write_all(&mut tty, b"SKIPPED: OS keyring test, no D-Bus session\n");
    }
    false
}

/// Run the binary in `p` with `stdin`.
fn run(p: &Project, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
    p.run_input(args, stdin, env)
}

fn api_project(server: &Server, secret: &str) -> Project {
    let p = Project::new();
    p.file("tags/tx.toml", TX_TAG);
    p.file(
        "sources/bank_api.toml",
        format!(
            "tags = [\"tx\"]\nprimary_key = [\"id\"]\n[fields]\ndate = \"booked\"\n\
             amount = \"amount\"\nmemo = \"memo\"\n[reader]\ntype = \"api\"\n\
             url = \"{}/tx\"\nrecords = \"/data\"\n\
             auth = {{ type = \"bearer\", secret = \"{secret}\" }}\n",
            server.base
        ),
    );
    p
}

#[test]
fn a_token_set_in_the_keyring_is_the_one_a_sync_sends() {
    if !keyring_session() {
        return;
    }
    let name = format!("ingestor_test_{}", std::process::id());
    let token = format!("kr-{}-token", std::process::id());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let (s, want) = (sent.clone(), format!("Bearer {token}"));
    let server = Server::start(move |req, _| {
        s.lock()
            .expect("sent")
            .push(req.header("authorization").map(str::to_string));
        if req.header("authorization") != Some(want.as_str()) {
            return Reply::status(401);
        }
        Reply::json(
            r#"{"data": [{"id": 1, "booked": "2026-01-01", "amount": 12.30, "memo": "a"},
                         {"id": 2, "booked": "2026-01-02", "amount": -0.05, "memo": "b"}]}"#,
        )
    });
    let p = api_project(&server, &name);
    // From stdin (not a terminal): the trailing newline is not part of the value.
    run(&p, &["secret", "set", &name], &format!("{token}\n"), &[]).code(0);
    let list = run(&p, &["secret", "list"], "", &[]).code(0);
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("`secret list` lacks {name}:\n{}", list.stdout));
    assert!(
        line.contains("keyring") && line.contains("used by source `bank_api`"),
        "{line}"
    );
    let got = run(&p, &["secret", "get", &name], "", &[]).code(0);
    assert!(got.stdout.contains("set (OS keyring)") && !got.stdout.contains(&token));
    let shown = run(&p, &["secret", "get", &name, "--show"], "", &[]).code(0);
    assert_eq!(shown.stdout, format!("{token}\n"));

    let synced = run(&p, &["sync"], "", &[]).code(0);
    assert!(!synced.stdout.contains(&token) && !synced.stderr.contains(&token));
    assert_eq!(
        p.texts("SELECT sum(amount)::VARCHAR FROM main.tx"),
        ["12.25"]
    );
    assert_eq!(
        sent.lock().expect("sent").as_slice(),
        [Some(format!("Bearer {token}"))]
    );

    // A generated key goes into the keyring once; a second would orphan a keyed vault.
    let key_name = format!("{name}_key");
    run(&p, &["secret", "generate", &key_name], "", &[]).code(0);
    let shown = run(&p, &["secret", "get", &key_name, "--show"], "", &[]).code(0);
    assert_eq!(shown.stdout.trim().len(), 64);
    run(&p, &["secret", "generate", &key_name], "", &[])
        .code(2)
        .stderr_has(&["already in the OS keyring"]);
    run(&p, &["secret", "rm", &key_name], "", &[]).code(0);

    run(&p, &["secret", "rm", &name], "", &[]).code(0);
    run(&p, &["secret", "rm", &name], "", &[])
        .code(5)
        .stderr_has(&["is not in the OS keyring"]);
    let env = format!("INGESTOR_SECRET_{}", name.to_uppercase());
    run(&p, &["sync", "--force"], "", &[])
        .code(5)
        .stderr_has(&[&format!("secret `{name}`"), &env]);
}

/// A headless server has no keyring: every secret command says so and names the
/// environment variable to use instead; nothing falls back to a file.
#[test]
fn without_a_keyring_the_error_names_the_variable_to_use() {
    let p = Project::new();
    let no_bus = [
        (
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/ingestor-test-bus",
        ),
        ("XDG_RUNTIME_DIR", "/nonexistent"),
    ];
    run(&p, &["secret", "set", "bank_token"], "value\n", &no_bus)
        .code(5)
        .stderr_has(&["INGESTOR_SECRET_BANK_TOKEN", "keyring"]);
    let out = run(
        &p,
        &["secret", "get", "bank_token", "--show"],
        "",
        &[
            no_bus[0],
            no_bus[1],
            ("INGESTOR_SECRET_BANK_TOKEN", "from-env"),
        ],
    )
    .code(0);
    assert_eq!(out.stdout, "from-env\n");
    run(&p, &["secret", "generate", "vault_key"], "", &no_bus)
        .code(5)
        .stderr_has(&["INGESTOR_SECRET_VAULT_KEY"]);
    run(&p, &["secret", "set", "bank-token"], "v", &no_bus)
        .code(2)
        .stderr_has(&["letters, digits and `_`"]);
    run(&p, &["secret", "set", "bank_token"], "\n", &no_bus)
        .code(2)
        .stderr_has(&["the value is empty"]);
}
