//! `rebuild` and `lake verify`: the lake alone is enough to make the vault again.

use crate::common::Project;

const BANK_V1: &str = "id,Date,Amount,Memo\n\
    T1,2026-01-01,-4.50,Coffee\n\
    T2,2026-01-02,1500.00,Salary\n\
    T3,2026-01-03,-60.25,Groceries\n";

/// The same export downloaded again: one amount corrected, one booking added.
const BANK_V2: &str = "id,Date,Amount,Memo\n\
    T1,2026-01-01,-4.50,Coffee\n\
    T2,2026-01-02,1500.00,Salary\n\
    T3,2026-01-03,-61.25,Groceries\n\
    T4,2026-01-04,-9.99,Books\n";

/// A later export with a new column: a second satellite.
const BANK_FEB: &str = "id,Date,Amount,Memo,Category\n\
    T5,2026-02-01,-3.00,Coffee,food\n\
    T3,2026-01-03,-61.25,Groceries,food\n";

/// No ids: keyed by content; two identical purchases stay two rows.
const CARD: &str = "Date,Amount,Memo\n\
    2026-01-05,-2.00,Bus\n\
    2026-01-05,-2.00,Bus\n\
    2026-01-06,-12.00,Lunch\n";

/// Every row of every vault table, but for `run_id` (a rebuild is a run of its own),
/// with `load_ts` as microseconds since the epoch; table by table, rows sorted.
fn dump(p: &Project) -> Vec<String> {
    let tables = p.texts(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'vault' \
         ORDER BY table_name",
    );
    let mut out = Vec::new();
    for t in tables {
        out.push(format!("table {t}"));
        out.extend(p.texts(&format!(
            "SELECT s::VARCHAR FROM (SELECT * EXCLUDE (run_id, load_ts), \
             epoch_us(load_ts::TIMESTAMP) AS ts FROM vault.\"{t}\") s ORDER BY 1"
        )));
    }
    out
}

/// A project with four syncs behind it: a first load, a changed export, a new column
/// (a second satellite) and a content-keyed source.
fn synced_project() -> Project {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    p.file("in/bank/jan.csv", BANK_V2);
    p.sync().code(0).stdout_has(&["changed 1"]);
    p.file("in/bank/feb.csv", BANK_FEB);
    p.sync().code(0);
    p.file("in/card/jan.csv", CARD);
    p.sync().code(0);
    assert_eq!(p.satellites("bank").len(), 2);
    p
}

#[test]
fn rebuild_reproduces_the_vault_from_the_lake_alone() {
    let p = synced_project();
    let before = dump(&p);
    let sats_before = p.texts("SELECT table_name FROM meta.satellites ORDER BY ALL");
    assert!(before.len() > 20, "{before:?}");
    // The vault and every input are gone; only the lake is left.
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    std::fs::remove_dir_all(p.path("in")).expect("remove inputs");
    for dir in ["in/bank", "in/card"] {
        std::fs::create_dir_all(p.path(dir)).expect("mkdir");
    }
    let out = p.run(&["rebuild"]).code(0);
    assert!(
        out.stdout
            .contains("rebuilt `ingestor.duckdb` from the lake: 4 units"),
        "{}",
        out.stdout
    );
    assert_eq!(dump(&p), before);
    assert_eq!(
        p.texts("SELECT table_name FROM meta.satellites ORDER BY ALL"),
        sats_before
    );
    assert!(!p.path("ingestor.rebuilding.duckdb").exists());
    // The rebuilt vault knows what was loaded: the same bytes are skipped.
    p.file("in/bank/jan.csv", BANK_V2);
    p.sync().code(0).stdout_has(&["skipped    in/bank/jan.csv"]);
    // A rebuild adds nothing to the manifest: replaying it again gives the same vault.
    let loads = p.manifest().iter().filter(|e| e["kind"] == "load").count();
    assert_eq!(loads, 4);
    p.run(&["rebuild"]).code(0);
    assert_eq!(dump(&p), before);
}

#[test]
fn a_failed_rebuild_leaves_the_old_vault_as_it_was() {
    let p = synced_project();
    let before = dump(&p);
    let runs = p.int("SELECT count(*) FROM meta.runs");
    // A definition the lake's data breaks: Memo is text, not a number.
    let typed = format!(
        "{}\n[columns]\n\"Category\" = \"integer\"\n",
        crate::common::BANK_SOURCE
    );
    p.file("sources/bank.toml", typed);
    p.run(&["rebuild"]).code(1).stderr_has(&[
        "source `bank`",
        "in/bank/feb.csv",
        "Category",
        "is as it was",
    ]);
    assert_eq!(dump(&p), before);
    assert_eq!(p.int("SELECT count(*) FROM meta.runs"), runs);
    assert!(!p.path("ingestor.rebuilding.duckdb").exists());
}

#[test]
fn rebuild_applies_changed_definitions() {
    let p = synced_project();
    // The card source now also carries a second tag.
    p.file(
        "tags/spend.toml",
        "description = \"spending\"\n[fields]\namount = { type = \"decimal\" }\n",
    );
    p.file(
        "sources/card.toml",
        crate::common::CARD_SOURCE.replace("tags = [\"tx\"]", "tags = [\"tx\", \"spend\"]"),
    );
    p.run(&["rebuild"]).code(0);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_spend"), 3);
    assert_eq!(p.int("SELECT count(*) FROM main.spend"), 3);
    // The bank's rows are what they were.
    assert_eq!(p.int("SELECT count(*) FROM main.bank"), 7);
}

#[test]
fn rebuild_of_one_source_keeps_the_others() {
    let p = synced_project();
    let bank_before: Vec<String> = dump(&p)
        .into_iter()
        .filter(|l| l.contains("bank"))
        .collect();
    p.file(
        "sources/card.toml",
        format!(
            "{}\n[columns]\n\"Memo\" = \"text\"\n",
            crate::common::CARD_SOURCE
        ),
    );
    p.run(&["rebuild", "card"]).code(0);
    let bank_after: Vec<String> = dump(&p)
        .into_iter()
        .filter(|l| l.contains("bank"))
        .collect();
    assert_eq!(bank_after, bank_before);
    assert_eq!(p.int("SELECT count(*) FROM main.card"), 3);
    assert_eq!(p.int("SELECT count(*) FROM vault.hub_tx"), 5 + 3);
    // Without a vault there is nothing to keep the other sources of.
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    p.run(&["rebuild", "card"])
        .code(2)
        .stderr_has(&["without sources"]);
}

#[test]
fn the_manifest_says_who_loaded_what_into_which_satellite_and_when() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    let hash = blake3::hash(BANK_V1.as_bytes()).to_hex().to_string();
    let entries = p.manifest();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["kind"], "object");
    assert_eq!(entries[0]["hash"], hash.as_str());
    assert_eq!(entries[0]["source"], "bank");
    assert_eq!(entries[0]["name"], "in/bank/jan.csv");
    assert_eq!(entries[0]["size"], BANK_V1.len());
    assert_eq!(entries[1]["kind"], "load");
    assert_eq!(entries[1]["satellite"], p.satellites("bank")[0].as_str());
    let ts = entries[1]["load_ts"].as_str().expect("load_ts");
    assert_eq!(
        p.int(&format!(
            "SELECT count(*) FROM main.bank WHERE load_ts = '{ts}'::TIMESTAMPTZ"
        )),
        3
    );
    // Loads a crash kept out of the manifest are listed by the next sync: killed after
    // its commit, the sync neither listed the load nor said that it had.
    p.db()
        .execute_batch("DELETE FROM meta.vault WHERE key = 'manifest_listed_run'")
        .expect("forget the listed run");
    let objects_only: String = std::fs::read_to_string(p.path("lake/manifest.jsonl"))
        .expect("manifest")
        .lines()
        .filter(|l| l.contains("\"object\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(p.path("lake/manifest.jsonl"), objects_only).expect("write");
    p.sync().code(0).stdout_has(&["skipped"]);
    assert_eq!(p.manifest(), entries);
}

#[test]
fn lake_verify_finds_a_flipped_byte_and_a_missing_object() {
    let p = synced_project();
    let out = p.run(&["lake", "verify"]).code(0);
    assert!(out.stdout.contains("4 objects"), "{}", out.stdout);
    assert!(out.stdout.contains("all hold"), "{}", out.stdout);
    let flipped = blake3::hash(BANK_FEB.as_bytes()).to_hex().to_string();
    let missing = blake3::hash(CARD.as_bytes()).to_hex().to_string();
    let path = |h: &str| p.path(&format!("lake/{}/{h}", &h[..2]));
    let mut bytes = std::fs::read(path(&flipped)).expect("object");
    bytes[10] ^= 0x01;
    std::fs::write(path(&flipped), bytes).expect("flip");
    std::fs::remove_file(path(&missing)).expect("remove");
    let out = p.run(&["lake", "verify"]).code(4).stderr_has(&[
        &flipped,
        "its bytes hash to",
        "source `bank` `in/bank/feb.csv`",
        &missing,
        "missing",
        "source `card` `in/card/jan.csv`",
    ]);
    assert!(
        out.stdout.contains("2 damaged or missing"),
        "{}",
        out.stdout
    );
    // rebuild refuses a damaged lake before it touches anything.
    let before = dump(&p);
    p.run(&["rebuild"])
        .code(4)
        .stderr_has(&["the lake is damaged", &missing]);
    assert_eq!(dump(&p), before);
}

#[test]
fn a_full_rebuild_refuses_to_drop_a_source_no_longer_defined() {
    let p = synced_project();
    let before = dump(&p);
    p.remove("sources/card.toml");
    p.run(&["rebuild"]).code(2).stderr_has(&[
        "`card` (1 loads)",
        "no longer defines",
        "rebuild SOURCE..",
    ]);
    assert_eq!(dump(&p), before);
    // Rebuilding the sources that are defined keeps the card's rows.
    p.run(&["rebuild", "bank"]).code(0);
    assert_eq!(dump(&p), before);
}

#[test]
fn vaults_sharing_a_lake_each_replay_their_own_loads() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    let before = dump(&p);
    // A second vault over the same lake loads more.
    p.file("in/card/jan.csv", CARD);
    // A relative --db is relative to the working folder, not to -C: give it absolute.
    let other = p.path("other.duckdb");
    p.run(&["--db", other.to_str().expect("utf-8 path"), "sync"])
        .code(0);
    assert!(other.exists());
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    p.run(&["rebuild"]).code(0);
    assert_eq!(dump(&p), before);
}

#[test]
fn lake_verify_checks_objects_the_manifest_does_not_list() {
    let p = Project::tx();
    p.file("in/bank/jan.csv", BANK_V1);
    p.sync().code(0);
    // An object from before the lake had a manifest, damaged since.
    let stray = blake3::hash(b"old bytes").to_hex().to_string();
    p.file(
        &format!("lake/{}/{stray}", &stray[..2]),
        b"old bytes, changed",
    );
    p.run(&["lake", "verify"]).code(4).stderr_has(&[
        &stray,
        "its bytes hash to",
        "listed by no source",
        "in no line of the manifest",
    ]);
    p.file(&format!("lake/{}/{stray}", &stray[..2]), b"old bytes");
    let out = p.run(&["lake", "verify"]).code(0);
    assert!(out.stdout.contains("2 objects"), "{}", out.stdout);
}

/// Issue 12: copies of refused inputs are listed by `lake verify` and removed by
/// `lake gc`; everything a load refers to stays, and the lake still rebuilds the vault.
#[test]
fn lake_gc_removes_only_what_no_load_refers_to() {
    let p = Project::tx();
    p.file(
        "in/bank/a.csv",
        "id,Date,Amount,Memo\nT1,2026-01-01,1.00,x\n",
    );
    p.file(
        "in/bank/b.csv",
        "id,Date,Amount,Memo\nT2,2026-01-02,one euro,y\n",
    );
    p.sync().code(1);
    assert_eq!(
        p.lake_files().len(),
        2,
        "the refused file's copy is kept for now"
    );
    p.run(&["lake", "verify"])
        .code(0)
        .stdout_has(&["1 object(s)", "no load refers to", "lake gc"]);
    let dry = p.run(&["lake", "gc", "--dry-run"]).code(0);
    assert!(
        dry.stdout.contains("would remove") && dry.stdout.contains("`in/bank/b.csv`"),
        "{}",
        dry.stdout
    );
    assert_eq!(p.lake_files().len(), 2);
    p.run(&["lake", "gc"])
        .code(0)
        .stdout_has(&["removed", "in/bank/b.csv"]);
    assert_eq!(p.lake_files().len(), 1);
    let verified = p.run(&["lake", "verify"]).code(0);
    assert!(
        !verified.stdout.contains("no load refers to"),
        "{}",
        verified.stdout
    );
    // The refused file stored again is listed again, and nothing is missing.
    p.sync().code(1);
    assert_eq!(p.lake_files().len(), 2);
    p.run(&["lake", "verify"]).code(0);
    p.remove("in/bank/b.csv");
    p.run(&["lake", "gc"]).code(0);
    std::fs::remove_file(p.path("ingestor.duckdb")).expect("remove vault");
    p.run(&["rebuild"]).code(0);
    assert_eq!(p.texts("SELECT id FROM main.bank"), ["T1"]);
}

/// Definitions written for an earlier version keep their fingerprints when options are
/// added to the readers: the values below were recorded by the build of d72f99e on these
/// exact files. A changed load fingerprint reloads every input on upgrade; a changed
/// satellite fingerprint makes a second satellite, and every row shows twice.
#[test]
fn earlier_definitions_keep_their_load_and_satellite_fingerprints() {
    let p = Project::new();
    p.file(
        "tags/tx.toml",
        "[fields]\ndate   = { type = \"date\" }\namount = { type = \"decimal\" }\n\
         memo   = { type = \"text\", nullable = true }\n",
    );
    p.file(
        "sources/card.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Memo\"\n\
         [reader]\ntype = \"csv\"\npath = \"in/csv\"\nskip_rows = 1\ndate_format = \"%d %b\"\n\
         year = 2025\nskip_rows_matching = ['^Total']\n",
    );
    p.file(
        "in/csv/nov.csv",
        "Card\nDate,Amount,Memo\n05 Nov,-3.50,Coffee\nTotal,-3.50,\n",
    );
    p.file(
        "sources/giro.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\nmemo = \"Memo\"\n\
         amount = { column = \"Betrag\", sign = \"S/H\", negative = [\"S\"] }\n\
         [reader]\ntype = \"csv\"\npath = \"in/giro\"\n",
    );
    p.file(
        "in/giro/jan.csv",
        "Date,Memo,Betrag,S/H\n2026-01-03,Rent,800.00,S\n2026-01-04,Refund,20.00,H\n",
    );
    p.file(
        "sources/sheet.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"Date\"\namount = \"Amount\"\nmemo = \"Description\"\n\
         [reader]\ntype = \"excel\"\npath = \"in/xl\"\n",
    );
    p.file(
        "in/xl/statement.xlsx",
        crate::common::excel_fixture("statement.xlsx"),
    );
    p.file(
        "sources/giro_pdf.toml",
        r#"tags = ["tx"]
[fields]
date = "Buchungstag"
amount = "Betrag"
memo = "Verwendungszweck"
[reader]
type = "pdf"
path = "in/pdf"
row = '(?P<Buchungstag>\d{2}\.\d{2}\.\d{4}) (?P<Verwendungszweck>.+?) (?P<Betrag>-?[\d.]+,\d{2}-?) (?P<Saldo>-?[\d.]+,\d{2}-?)'
continuation = "Verwendungszweck"
skip = ['^Seite \d+ von \d+$', '^Buchungstag', '^Neuer Kontostand', '^Musterbank', '^IBAN']
decimal_separator = ","
thousands_separator = "."
date_format = "%d.%m.%Y"
[columns]
Saldo = "decimal"
"#,
    );
    p.file(
        "in/pdf/statement-reportlab.pdf",
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pdf/statement-reportlab.pdf"),
        )
        .expect("fixture"),
    );
    p.file(
        "sources/app.toml",
        "tags = [\"tx\"]\n[fields]\ndate = \"day\"\namount = \"value\"\nmemo = \"what\"\n\
         [reader]\ntype = \"json\"\npath = \"in/js\"\nrecords = \"/items\"\ndecimal_separator = \",\"\n",
    );
    p.file(
        "in/js/a.json",
        r#"{"items":[{"day":"2026-01-02","value":"-3,50","what":"Tea"}]}"#,
    );
    p.sync().code(0);
    assert_eq!(
        p.texts("SELECT source || ' ' || definition FROM meta.loads ORDER BY source"),
        [
            "app 0ab3a49cc797e81b06803f71a80b0c29",
            "card 41eceec6bfee8ffdf8d810ed7e1329f1",
            "giro a7779c5d687d0cb5a73853f0bfc46996",
            "giro_pdf e4b054e34ac601a76f351ff002252c56",
            "sheet b6b30b441c4182d4014856b3ac37945a",
        ]
    );
    assert_eq!(
        p.texts("SELECT source || ' ' || fingerprint FROM meta.satellites ORDER BY source"),
        [
            "app 552d7319de0f755f9061bd6853bb306c",
            "card 5258b5972568bea0fc4587c42b5e926b",
            "giro cd7ac6710f4113361b3a8d07be24630b",
            "giro_pdf e0714b06b6502d69727831ed898fcdf7",
            "sheet 9ee9d9e7f7d7d9ca91349c80523dcc98",
        ]
    );
}
