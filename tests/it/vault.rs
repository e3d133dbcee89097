//! The vault's recipe and keys, checked against the specification.

use crate::common::Project;

fn encode(values: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.push(1u8);
        out.extend((v.len() as u32).to_le_bytes());
        out.extend(v.as_bytes());
    }
    out
}

#[test]
fn hub_keys_and_hashdiffs_follow_recipe_v1() {
    let p = Project::tx();
    p.file(
        "sources/bank.toml",
        crate::common::BANK_SOURCE.replace(
            "tags = [\"tx\"]",
            "tags = [\"tx\"]\nkey_namespace = \"giro\"\nkey_case = \"upper\"",
        ),
    );
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\n  t-1 ,2026-01-01,-4.50,Coffee\n",
    );
    p.sync().code(0);
    let hk = blake3::hash(&encode(&["giro", "T-1"])).to_hex()[..32].to_string();
    assert_eq!(
        p.texts("SELECT replace(hk::VARCHAR, '-', '') FROM vault.hub_tx"),
        [hk]
    );
    assert_eq!(p.texts("SELECT key_namespace FROM vault.hub_tx"), ["giro"]);
    // hashdiff: payload in satellite column order, canonical text (trimmed, decimal
    // without trailing zeros, ISO date).
    let diff =
        blake3::hash(&encode(&["t-1", "2026-01-01", "-4.5", "Coffee"])).to_hex()[..32].to_string();
    assert_eq!(
        p.texts("SELECT replace(hashdiff::VARCHAR, '-', '') FROM main.bank"),
        [diff]
    );
    assert_eq!(
        p.texts("SELECT value FROM meta.vault WHERE key IN ('hash_recipe', 'hash_algorithm', 'key_format') ORDER BY key"),
        ["blake3", "v1", "uuid"]
    );
}

#[test]
fn two_tags_fill_two_hubs_with_the_same_keys() {
    let p = Project::tx();
    p.file(
        "tags/spend.toml",
        "[fields]\namount = { type = \"decimal\" }\n",
    );
    p.file(
        "sources/bank.toml",
        crate::common::BANK_SOURCE.replace("tags = [\"tx\"]", "tags = [\"tx\", \"spend\"]"),
    );
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-4.50,Coffee\nT2,2026-01-02,3.00,x\n",
    );
    p.sync().code(0);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 2);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_spend"), 2);
    assert_eq!(
        p.int("SELECT count(*) FROM vault.hub_tx JOIN vault.hub_spend USING (hk)"),
        2
    );
    assert_eq!(p.int("SELECT count(*) FROM main.spend"), 2);
}

#[test]
fn tag_views_exist_before_any_load() {
    let p = Project::tx();
    p.sync().code(0).stdout_has(&["no inputs"]);
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 0);
    assert_eq!(
        p.texts("SELECT column_name FROM information_schema.columns WHERE table_name = 'tx' ORDER BY ordinal_position"),
        ["hk", "date", "amount", "memo", "record_source", "load_ts"]
    );
}

#[test]
fn definitions_changed_after_a_sync_get_their_hubs_and_views() {
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-4.50,Coffee\n",
    );
    p.sync().code(0);
    // A second sync with the same definitions skips the set-up; a new tag must not.
    p.sync().code(0);
    p.file(
        "tags/spend.toml",
        "[fields]\namount = { type = \"decimal\" }\n",
    );
    p.file(
        "sources/bank.toml",
        crate::common::BANK_SOURCE.replace("tags = [\"tx\"]", "tags = [\"tx\", \"spend\"]"),
    );
    // T1 changed and T2 new: both reach the satellite, so both belong in the new hub.
    p.file(
        "in/bank/b.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,-5.00,Coffee\nT2,2026-01-02,3.00,x\n",
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT business_key FROM vault.hub_spend ORDER BY 1"),
        ["T1", "T2"]
    );
    assert_eq!(p.int("SELECT count(*) FROM main.spend"), 2);
}

/// Issue 12: read-only commands share the vault; a sync waits its turn with --wait.
#[test]
fn readers_share_the_vault_and_a_sync_can_wait_for_its_turn() {
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    p.sync().code(0);
    let read_only = || {
        let config = duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .expect("config");
        duckdb::Connection::open_with_flags(p.path("ingestor.duckdb"), config).expect("open")
    };
    // Another reader holds the vault: queries still run beside it.
    let holder = read_only();
    p.run(&["status"]).code(0);
    p.run(&["sql", "SELECT count(*) FROM main.tx"])
        .code(0)
        .stdout_has(&["1"]);
    p.run(&["runs"]).code(0);
    // A query cannot write.
    p.run(&["sql", "DELETE FROM vault.hub_tx"]).code(2);
    // A sync needs the vault to itself: at once it fails, naming the lock...
    p.file(
        "in/bank/b.csv",
        "id,Date,Amount,Memo\nT2,2026-01-02,2.00,y\n",
    );
    p.sync()
        .code(4)
        .stderr_has(&["locked by another process", "--wait"]);
    // ...with a short wait it says how long it waited...
    p.run(&["sync", "--wait", "1s"])
        .code(4)
        .stderr_has(&["(waited 1 s)"]);
    // ...and with a longer one it goes ahead when the reader is done.
    let released = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(holder);
    });
    p.run(&["sync", "--wait", "30s"]).code(0);
    released.join().expect("thread");
    assert_eq!(p.int("SELECT count(*) FROM main.tx"), 2);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 2);
}
