//! The load pipeline every reader and every command shares: input units in the lake,
//! through a reader and the tag contract, into the vault in one transaction each.
//!
//! An input unit is bytes in the lake (its hash, size and original name, the source, the
//! reader state it starts from). `sync` finds units among a source's files, skips those
//! the source already loaded, and copies the rest into the lake while loading them;
//! `rebuild` replays units the lake's manifest lists. Either way the unit goes through
//! `load::load_unit`, whose retry and every replay read the lake's copy, never the
//! original. Commands plan and print; they do not load.

mod load;

use std::path::PathBuf;

use chrono::{DateTime, SubsecRound, Utc};
use duckdb::Connection;
use indicatif::ProgressBar;
use serde::Serialize;

use crate::db::Transaction;
use crate::defs::Source;
use crate::error::{exit_code, VaultError, EXIT_CONTRACT, EXIT_OK};
use crate::lake::{self, Entry, FileStat, LoadEntry};
use crate::plan::Project;
use crate::readers::api::FetchContext;
use crate::readers::{ApiConfig, OpenContext};
use crate::secrets::SecretStore;
use crate::timings::Timings;
use crate::validate::Contract;
use crate::vault::latest::Latest;
use crate::vault::meta::{self, LoadCounts, Unit, UnitStatus};
use crate::vault::writer::WayChoice;
use crate::vault::RecipeHasher;

pub use crate::vault::meta::UnitStatus as Status;

/// One input unit: bytes the lake keeps (or is about to keep), and how to load them.
#[derive(Debug, Clone)]
pub struct InputUnit {
    /// BLAKE3 of the bytes: the lake object's name.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// The original name, as messages name the unit; its ending tells the format.
    pub name: String,
    /// A first load may read the original file while it is copied into the lake, when the
    /// file system can prove it did not change meanwhile (its stat). `None`: read the lake.
    pub original: Option<(PathBuf, FileStat)>,
    /// The original file when it is not in the lake yet and has no stat: copied first.
    pub copy_from: Option<PathBuf>,
    /// The `load_ts` and satellite name a replay must reuse.
    pub replay: Option<(DateTime<Utc>, Option<String>)>,
    /// The source loaded these bytes before, under another definition.
    pub reload: bool,
}

/// What became of one input unit.
#[derive(Debug, Serialize)]
pub struct UnitReport {
    /// The unit's original name.
    pub path: String,
    pub file_hash: Option<String>,
    pub status: UnitStatus,
    pub satellite: Option<String>,
    pub counts: Option<LoadCounts>,
    pub error: Option<String>,
    pub exit_code: i32,
    /// Loaded again because the source's definition changed since it was loaded.
    pub definition_changed: bool,
}

impl UnitReport {
    fn ok(path: String, hash: String, status: UnitStatus) -> Self {
        UnitReport {
            path,
            file_hash: Some(hash),
            status,
            satellite: None,
            counts: None,
            error: None,
            exit_code: EXIT_OK,
            definition_changed: false,
        }
    }

    fn failed(path: String, hash: Option<String>, err: &anyhow::Error) -> Self {
        let code = exit_code(err);
        UnitReport {
            path,
            file_hash: hash,
            status: if code == EXIT_CONTRACT {
                UnitStatus::Rejected
            } else {
                UnitStatus::Failed
            },
            satellite: None,
            counts: None,
            error: Some(format!("{err:#}")),
            exit_code: code,
            definition_changed: false,
        }
    }
}

/// What became of one source.
#[derive(Debug, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub exit_code: i32,
    pub error: Option<String>,
    pub units: Vec<UnitReport>,
}

impl SourceReport {
    fn new(source: &str) -> Self {
        SourceReport {
            source: source.to_string(),
            exit_code: EXIT_OK,
            error: None,
            units: Vec::new(),
        }
    }

    /// The largest exit code of the source and its units.
    fn settle(&mut self) {
        self.exit_code = self
            .units
            .iter()
            .map(|u| u.exit_code)
            .max()
            .unwrap_or(EXIT_OK)
            .max(self.exit_code);
    }
}

/// How many units of some reports ended each way.
pub fn tally(reports: &[SourceReport]) -> meta::RunTally {
    let mut t = meta::RunTally::default();
    for u in reports.iter().flat_map(|r| &r.units) {
        match u.status {
            UnitStatus::Loaded => t.loaded += 1,
            UnitStatus::Skipped => t.skipped += 1,
            UnitStatus::Failed | UnitStatus::Rejected => t.failed += 1,
            UnitStatus::WouldLoad => {}
        }
    }
    t
}

/// Loads units of a project into one open vault (or, for a dry run, only plans them).
pub struct Pipeline<'a> {
    project: &'a Project,
    /// The vault; `None` on a dry run before any vault exists.
    conn: Option<&'a Connection>,
    /// Plan only: write nothing.
    dry_run: bool,
    hasher: &'a RecipeHasher,
    secrets: &'a dyn SecretStore,
    run_id: i64,
    progress: &'a ProgressBar,
    /// Whether committed loads are listed in the lake's manifest (not when replaying it).
    record_loads: bool,
    /// Time spent per phase, over every unit.
    pub timings: Timings,
    /// The load fingerprint of the source being loaded.
    definition: String,
    /// Whether a load could not be listed in the lake's manifest (the next sync lists it
    /// from the vault).
    listing_failed: bool,
    /// The reader state of the source being loaded, as (source, state).
    state: std::cell::RefCell<Option<(String, Option<String>)>>,
}

impl<'a> Pipeline<'a> {
    /// A pipeline writing into `conn` as run `run_id`. A dry run reads `conn` (if there
    /// is a vault yet) to decide what it would load, and writes nothing.
    pub fn new(
        project: &'a Project,
        conn: Option<&'a Connection>,
        dry_run: bool,
        hasher: &'a RecipeHasher,
        secrets: &'a dyn SecretStore,
        run_id: i64,
        progress: &'a ProgressBar,
    ) -> Self {
        Pipeline {
            project,
            conn,
            dry_run,
            hasher,
            secrets,
            run_id,
            progress,
            record_loads: true,
            timings: Timings::default(),
            state: Default::default(),
            listing_failed: false,
            definition: String::new(),
        }
    }

    /// Whether every load committed so far is listed in the lake's manifest, durably.
    pub fn all_listed(&self) -> bool {
        !self.listing_failed
    }

    /// Replaying the manifest: loads are not listed in it again.
    pub fn replaying(mut self) -> Self {
        self.record_loads = false;
        self
    }

    /// List in the lake's manifest every load the vault committed but the manifest lacks
    /// (a crash between the commit and the listing, or a lake from before the manifest).
    pub fn reconcile_manifest(
        conn: &Connection,
        lake: &lake::Lake,
        vault: &str,
    ) -> Result<usize, VaultError> {
        // Runs up to the last one known listed need no look: a sync says so at its end.
        let loads = meta::loaded_units(conn, meta::listed_run(conn))?;
        if loads.is_empty() {
            return Ok(0);
        }
        let manifest = lake.manifest()?;
        let listed: std::collections::HashSet<(&str, &str, DateTime<Utc>)> = manifest
            .loads()
            .filter(|l| l.is_for(vault))
            .map(|l| (l.source.as_str(), l.hash.as_str(), l.load_ts))
            .collect();
        let mut missing = Vec::new();
        for load in loads {
            // A damaged vault may hold anything; only a lake name can be in the lake.
            if !lake::is_hash(&load.file_hash)
                || listed.contains(&(load.source.as_str(), load.file_hash.as_str(), load.load_ts))
            {
                continue;
            }
            if let Ok(m) = std::fs::metadata(lake.path_of(&load.file_hash)) {
                lake.note_object(&load.file_hash, m.len(), &load.source, &load.path)?;
            }
            missing.push(Entry::Load(LoadEntry {
                hash: load.file_hash,
                source: load.source,
                name: load.path,
                load_ts: load.load_ts,
                satellite: load.satellite,
                vault: Some(vault.to_string()),
            }));
        }
        lake.append(&missing)?;
        Ok(missing.len())
    }

    /// Sync one source: find its files, skip those it loaded, check the contract of the
    /// rest, and load them one unit at a time.
    pub fn sync_source(&mut self, source: &Source, force: bool) -> SourceReport {
        if let Some(api) = source.reader.kind().remote() {
            return self.sync_remote(source, api, force);
        }
        let mut report = SourceReport::new(&source.id);
        let paths = match source.reader.inputs(&self.project.defs.dir) {
            Ok(p) => p,
            Err(e) => {
                let e = anyhow::Error::new(e);
                report.exit_code = exit_code(&e);
                report.error = Some(format!("{e:#}"));
                return report;
            }
        };
        let conn = self.conn;
        let definition = self.project.defs.load_fingerprint(source);
        self.definition = definition.clone();
        let loaded_before = self.timings.time("skip check", || match conn {
            Some(c) if !force => meta::loaded_files(c, &source.id, &definition),
            _ => Ok(Default::default()),
        });
        if let (Some(c), false) = (conn, self.dry_run) {
            if let Err(e) = meta::adopt_definition(c, &source.id, &definition) {
                let e = anyhow::Error::new(e);
                report.exit_code = exit_code(&e);
                report.error = Some(format!("{e:#}"));
                return report;
            }
        }
        // Files whose stat is what it was when they were hashed are not read again (as
        // git's index does); --force reads everything.
        let stats = match (conn, force) {
            (Some(c), false) => meta::file_stats(c, &source.id).unwrap_or_default(),
            _ => Default::default(),
        };
        let mut restat = Vec::new();
        let mut pending = Vec::new();
        for path in paths {
            let name = self.project.display(&path);
            let stat = lake::file_stat(&path);
            let known = stat.and_then(|s| {
                stats
                    .get(&name)
                    .filter(|(seen, _)| *seen == s)
                    .map(|(_, hash)| (hash.clone(), s.size))
            });
            let hashed_now = known.is_none();
            let hashed = match known {
                Some(k) => Ok(k),
                None => self
                    .timings
                    .time("hash file", || lake::hash_file(&path, &name)),
            };
            let (hash, size) = match hashed {
                Ok(h) => h,
                Err(e) => {
                    report.units.push(UnitReport::failed(name, None, &e.into()));
                    continue;
                }
            };
            let loaded = match &loaded_before {
                Ok(set) => Ok(set.current.contains(&hash)),
                Err(e) => Err(VaultError::Refused(format!("{e:#}"))),
            };
            // Loaded before, under another definition: loaded again, and said so.
            let reload = matches!(&loaded_before, Ok(set) if set.any.contains(&hash));
            if let (Ok(true), true, Some(stat)) = (&loaded, hashed_now, stat) {
                restat.push((name.clone(), hash.clone(), stat));
            }
            match loaded {
                Ok(true) => report
                    .units
                    .push(UnitReport::ok(name, hash, UnitStatus::Skipped)),
                Ok(false) => pending.push((
                    InputUnit {
                        hash,
                        size,
                        name,
                        original: stat.map(|s| (path.clone(), s)),
                        copy_from: stat.is_none().then(|| path.clone()),
                        replay: None,
                        reload,
                    },
                    path,
                )),
                Err(e) => report
                    .units
                    .push(UnitReport::failed(name, Some(hash), &e.into())),
            }
        }
        // Units loaded again after a definition change go first, in the order they were
        // first loaded, so that each key's latest row is the one it was before (path
        // order would let an older export that sorts later win).
        if let (Some(c), true) = (conn, pending.iter().any(|(u, _)| u.reload)) {
            if let Ok(order) = meta::load_order(c, &source.id) {
                pending.sort_by_key(|(u, _)| {
                    if u.reload {
                        order.get(&u.hash).copied().unwrap_or(usize::MAX - 1)
                    } else {
                        usize::MAX
                    }
                });
            }
        }
        // The tag contract is checked on every pending unit before anything is written:
        // a source that lost a field loads nothing.
        let checked: Vec<_> = pending
            .iter()
            .map(|(unit, path)| (unit, path.clone()))
            .collect();
        let passed = self.precheck(source, &checked, &mut report);
        if report.error.is_some() {
            report.settle();
            return report;
        }
        let units: Vec<InputUnit> = pending
            .into_iter()
            .zip(passed)
            .filter_map(|((unit, _), ok)| ok.then_some(unit))
            .collect();
        if self.dry_run {
            for unit in units {
                report
                    .units
                    .push(UnitReport::ok(unit.name, unit.hash, UnitStatus::WouldLoad));
            }
            report.settle();
            return report;
        }
        self.load_units(source, units, &mut report, &mut restat);
        // Loaded files, and files skipped after hashing (touched, not changed), are
        // remembered by their stat in one transaction: if it is lost, they are hashed again.
        if let (Some(c), false, false) = (self.conn, self.dry_run, restat.is_empty()) {
            let remembered = Transaction::begin(c, "recording file stats").and_then(|tx| {
                for (name, hash, stat) in &restat {
                    meta::record_stat(c, &source.id, name, hash, *stat)?;
                }
                tx.commit("recording file stats")
            });
            // Not worth failing the run for: the files are hashed again next time.
            if let Err(e) = remembered {
                self.progress
                    .suspend(|| eprintln!("warning: source `{}`: {e}", source.id));
            }
        }
        self.flush_lake(source);
        report.settle();
        report
    }

    /// Sync an API source: one unit, fetched into the lake from the saved cursor, then
    /// checked and loaded as any unit is. A dry run only says what it would request.
    fn sync_remote(&mut self, source: &Source, api: &ApiConfig, force: bool) -> SourceReport {
        let mut report = SourceReport::new(&source.id);
        let definition = self.project.defs.load_fingerprint(source);
        self.definition = definition.clone();
        let state = match self.saved_state(source) {
            Ok(s) => s,
            Err(e) => {
                report
                    .units
                    .push(UnitReport::failed(api.shown_url(), None, &e.into()));
                report.settle();
                return report;
            }
        };
        if self.dry_run {
            let mut unit = UnitReport::ok(
                api.first_request(state.as_deref()),
                String::new(),
                UnitStatus::WouldLoad,
            );
            unit.file_hash = None;
            report.units.push(unit);
            return report;
        }
        let conn = self.conn.expect("a vault is open when loading");
        let loaded_before = if force {
            Ok(Default::default())
        } else {
            meta::loaded_files(conn, &source.id, &definition)
        };
        if let Err(e) = meta::adopt_definition(conn, &source.id, &definition) {
            report
                .units
                .push(UnitReport::failed(api.shown_url(), None, &e.into()));
            report.settle();
            return report;
        }
        let progress = self.progress;
        let start = std::time::Instant::now();
        let fetched = api.fetch(&FetchContext {
            source: &source.id,
            lake: &self.project.lake,
            secrets: self.secrets,
            state: state.as_deref(),
            on_page: &|n| progress.set_message(format!("{} page {n}", source.id)),
        });
        self.timings.add("fetch", start.elapsed());
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                report
                    .units
                    .push(UnitReport::failed(api.shown_url(), None, &e));
                self.flush_lake(source);
                report.settle();
                return report;
            }
        };
        match &loaded_before {
            Ok(set) if set.current.contains(&fetched.hash) => {
                report.units.push(UnitReport::ok(
                    fetched.name,
                    fetched.hash,
                    UnitStatus::Skipped,
                ));
            }
            _ => {
                let unit = InputUnit {
                    reload: matches!(&loaded_before, Ok(set) if set.any.contains(&fetched.hash)),
                    hash: fetched.hash,
                    size: fetched.size,
                    name: fetched.name,
                    original: None,
                    copy_from: None,
                    replay: None,
                };
                let path = self.project.lake.path_of(&unit.hash);
                if self.precheck(source, &[(&unit, path)], &mut report) == [true] {
                    self.load_units(source, vec![unit], &mut report, &mut Vec::new());
                }
            }
        }
        self.flush_lake(source);
        report.settle();
        report
    }

    /// Make the lake's manifest lines durable; a failure is a warning (the next sync
    /// lists the loads from the vault).
    fn flush_lake(&mut self, source: &Source) {
        if let Err(e) = self.project.lake.flush() {
            self.listing_failed = true;
            self.progress
                .suspend(|| eprintln!("warning: source `{}`: {e}", source.id));
        }
    }

    /// Check the contract of each unit (opened at `path`) before any is loaded; whether
    /// each passed. A unit that fails is reported; when one breaks the contract the
    /// source loads nothing: its error is set and no unit passes.
    fn precheck(
        &mut self,
        source: &Source,
        units: &[(&InputUnit, PathBuf)],
        report: &mut SourceReport,
    ) -> Vec<bool> {
        let mut passed = Vec::with_capacity(units.len());
        for (unit, path) in units {
            let start = std::time::Instant::now();
            let checked = self.contract(source, path, &unit.name);
            self.timings.add("check headers", start.elapsed());
            let Err(e) = checked else {
                passed.push(true);
                continue;
            };
            let r = UnitReport::failed(unit.name.clone(), Some(unit.hash.clone()), &e);
            self.record_failure(source, unit, &r, 0);
            report.units.push(r);
            passed.push(false);
            if exit_code(&e) == EXIT_CONTRACT {
                report.error =
                    Some("nothing of this source was loaded: it breaks its tag contract".into());
                report.exit_code = report.exit_code.max(EXIT_CONTRACT);
                return vec![false; units.len()];
            }
        }
        passed
    }

    /// Open a unit far enough to know its columns, and check them against the tags.
    fn contract(&self, source: &Source, path: &std::path::Path, name: &str) -> anyhow::Result<()> {
        let state = self.saved_state(source)?;
        let ctx = OpenContext {
            path,
            name,
            secrets: self.secrets,
            state: state.as_deref(),
            lake: Some(&self.project.lake),
        };
        let reader = source.reader.open(&ctx)?;
        self.project.check_width(name, reader.columns().len())?;
        // Without records there are no columns to check, and nothing to load.
        if !reader.no_records() {
            Contract::new(&self.project.defs, source, &reader.schema(), name)?;
        }
        Ok(())
    }

    /// The reader state the source's last load saved: read once per source, then kept
    /// as each load commits a new one.
    fn saved_state(&self, source: &Source) -> Result<Option<String>, VaultError> {
        let mut cached = self.state.borrow_mut();
        if let Some((id, state)) = cached.as_ref() {
            if *id == source.id {
                return Ok(state.clone());
            }
        }
        let state = match self.conn {
            Some(c) => meta::state(c, &source.id, meta::READER_STATE)?,
            None => None,
        };
        *cached = Some((source.id.clone(), state.clone()));
        Ok(state)
    }

    /// Load units of one source in order, each in its own transaction.
    fn load_units(
        &mut self,
        source: &Source,
        units: Vec<InputUnit>,
        report: &mut SourceReport,
        restat: &mut Vec<(String, String, FileStat)>,
    ) {
        let conn = self.conn.expect("a vault is open when loading");
        // Rows per byte of this source's earlier loads, to size the units, and the latest
        // hashdiffs of a satellite, kept from one direct unit to the next.
        let rows_per_byte = if units.is_empty() {
            0.0
        } else {
            meta::rows_per_byte(conn, &source.id)
        };
        let mut bytes_ahead: u64 = units.iter().map(|u| u.size).sum();
        let mut cache: Option<(String, Latest)> = None;
        for unit in units {
            // Ctrl-C or SIGTERM: no further unit starts.
            if crate::interrupt::requested() {
                break;
            }
            let choice = WayChoice {
                allow_direct: true,
                cached: cache.as_ref().map(|(sat, _)| sat.clone()),
                rows_ahead: rows_per_byte * bytes_ahead as f64,
                more_units: bytes_ahead > unit.size,
            };
            bytes_ahead -= unit.size;
            let stat = unit.original.as_ref().map(|(_, s)| *s);
            let r = self.load(source, unit, choice, &mut cache);
            if let (UnitStatus::Loaded, Some(stat), Some(hash)) = (r.status, stat, &r.file_hash) {
                restat.push((r.path.clone(), hash.clone(), stat));
            }
            report.units.push(r);
        }
    }

    /// Replay one unit the lake's manifest lists, with the `load_ts` and satellite name it
    /// had. The lake's copy is what is read.
    pub fn replay(&mut self, source: &Source, load: &LoadEntry) -> UnitReport {
        self.definition = self.project.defs.load_fingerprint(source);
        let size = std::fs::metadata(self.project.lake.path_of(&load.hash))
            .map(|m| m.len())
            .unwrap_or(0);
        let unit = InputUnit {
            hash: load.hash.clone(),
            size,
            name: load.name.clone(),
            original: None,
            copy_from: None,
            replay: Some((load.load_ts, load.satellite.clone())),
            reload: false,
        };
        let path = self.project.lake.path_of(&load.hash);
        let mut report = SourceReport::new(&source.id);
        if self.precheck(source, &[(&unit, path)], &mut report) != [true] {
            if let Some(r) = report.units.pop() {
                return r;
            }
        }
        let choice = WayChoice {
            allow_direct: true,
            cached: None,
            rows_ahead: 0.0,
            more_units: false,
        };
        self.load(source, unit, choice, &mut None)
    }

    /// Load one unit: its transaction, the retry a repeated key needs, its report.
    fn load(
        &mut self,
        source: &Source,
        mut input: InputUnit,
        mut choice: WayChoice,
        cache: &mut Option<(String, Latest)>,
    ) -> UnitReport {
        let conn = self.conn.expect("a vault is open when loading");
        self.progress
            .set_message(format!("{} {}", source.id, input.name));
        self.progress.set_position(0);
        let (load_ts, satellite_name) = match &input.replay {
            Some((ts, name)) => (*ts, name.clone()),
            // Microseconds: what DuckDB keeps, so the manifest says what the rows say.
            None => (Utc::now().trunc_subsecs(6), None),
        };
        let unit = Unit {
            run_id: self.run_id,
            file_hash: input.hash.clone(),
            path: input.name.clone(),
            size: input.size,
            load_ts,
            satellite_name,
            definition: self.definition.clone(),
        };
        let state = match self.saved_state(source) {
            Ok(s) => s,
            Err(e) => return UnitReport::failed(input.name, Some(input.hash), &e.into()),
        };
        let outcome = loop {
            let ctx = load::Context {
                project: self.project,
                source,
                conn,
                hasher: self.hasher,
                secrets: self.secrets,
                state: state.as_deref(),
                progress: self.progress,
            };
            let outcome = load::load_unit(
                &ctx,
                &input,
                unit.clone(),
                &mut self.timings,
                &choice,
                cache,
            );
            match &outcome {
                // A key came twice: its last row must win, which only the staged way
                // decides; the direct attempt was rolled back. The retry reads the lake.
                Err((e, _))
                    if e.is::<crate::vault::writer::RepeatedKey>() && choice.allow_direct =>
                {
                    choice.allow_direct = false;
                    input.original = None;
                    input.copy_from = None;
                }
                _ => break outcome,
            }
        };
        match outcome {
            Ok(load::Loaded {
                satellite,
                counts,
                end_state,
            }) => {
                if end_state.is_some() {
                    *self.state.borrow_mut() = Some((source.id.clone(), end_state));
                }
                if self.record_loads {
                    let listed = self.project.lake.append_lines(&[Entry::Load(LoadEntry {
                        hash: input.hash.clone(),
                        source: source.id.clone(),
                        name: input.name.clone(),
                        load_ts,
                        satellite: satellite.clone(),
                        vault: Some(self.project.display(&self.project.database)),
                    })]);
                    // The load is committed; the next sync lists it from the vault.
                    if let Err(e) = listed {
                        self.listing_failed = true;
                        self.progress
                            .suspend(|| eprintln!("warning: source `{}`: {e}", source.id));
                    }
                }
                UnitReport {
                    path: input.name,
                    file_hash: Some(input.hash),
                    status: UnitStatus::Loaded,
                    satellite,
                    counts: Some(counts),
                    error: None,
                    exit_code: EXIT_OK,
                    definition_changed: input.reload,
                }
            }
            Err((e, rows_read)) => {
                // Every error names its file; a vault error (DuckDB out of memory, say)
                // would otherwise name only the table.
                let e = if format!("{e:#}").contains(&input.name) {
                    e
                } else {
                    e.context(format!("loading `{}`", input.name))
                };
                let r = UnitReport::failed(input.name.clone(), Some(input.hash.clone()), &e);
                self.record_failure(source, &input, &r, rows_read);
                r
            }
        }
    }

    /// Record a unit that failed or was rejected in `meta.loads`, so `runs` can show it. A
    /// failure to record it is not worth failing the run for: the error was printed.
    fn record_failure(&self, source: &Source, input: &InputUnit, r: &UnitReport, rows_read: u64) {
        let Some(conn) = self.conn.filter(|_| !self.dry_run) else {
            return;
        };
        let unit = Unit {
            run_id: self.run_id,
            file_hash: input.hash.clone(),
            path: input.name.clone(),
            size: input.size,
            load_ts: Utc::now(),
            satellite_name: None,
            definition: self.definition.clone(),
        };
        let counts = LoadCounts {
            rows_read,
            ..LoadCounts::default()
        };
        let _ = meta::record_load(
            conn,
            &unit,
            &source.id,
            None,
            &counts,
            r.status,
            r.error.as_deref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::EnvStore;

    const TAG: &str = "[fields]\ndate = { type = \"date\" }\namount = { type = \"decimal\" }\n";
    const SOURCE: &str = "tags = [\"tx\"]\nprimary_key = [\"id\"]\n\
        [reader]\ntype = \"csv\"\npath = \"in\"\n";

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let project = Project::open(dir.path(), None).expect("project");
        (dir, project)
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// The pipeline as a library: sync, a retry after a repeated key that reads the lake
    /// (the original is gone by then), and a replay of the manifest into a second vault.
    #[test]
    fn loads_skips_and_replays_without_the_binary() {
        let (dir, project) = project(&[
            ("tags/tx.toml", TAG),
            ("sources/bank.toml", SOURCE),
            (
                "in/a.csv",
                "id,date,amount\n1,2026-01-01,1.50\n2,2026-01-02,-2\n1,2026-01-03,7\n",
            ),
        ]);
        let hasher = RecipeHasher::plain();
        let bar = ProgressBar::hidden();
        let source = &project.defs.sources["bank"];
        let conn = crate::vault::open_for_writing(&project.database, &project.defs, &hasher)
            .expect("vault");
        let mut pipeline = Pipeline::new(&project, Some(&conn), false, &hasher, &EnvStore, 1, &bar);
        let report = pipeline.sync_source(source, false);
        assert_eq!(report.exit_code, EXIT_OK, "{report:?}");
        assert_eq!(report.units.len(), 1);
        assert_eq!(report.units[0].status, UnitStatus::Loaded);
        let counts = report.units[0].counts.clone().expect("counts");
        // Key 1 came twice: the staged retry keeps its last row.
        assert_eq!((counts.rows_read, counts.duplicate_keys), (3, 1));
        assert_eq!(
            count(&conn, "SELECT count(*) FROM main.tx WHERE amount = 7"),
            1
        );
        let again = pipeline.sync_source(source, false);
        assert_eq!(again.units[0].status, UnitStatus::Skipped);
        let manifest = project.lake.manifest().expect("manifest");
        let loads: Vec<&LoadEntry> = manifest.loads().collect();
        assert_eq!(loads.len(), 1);
        // Replay into another vault, with the original input gone.
        std::fs::remove_dir_all(dir.path().join("in")).expect("remove inputs");
        let other = Project::open(dir.path(), Some(dir.path().join("other.duckdb"))).expect("p");
        let conn2 =
            crate::vault::open_for_writing(&other.database, &other.defs, &hasher).expect("vault");
        let mut replay =
            Pipeline::new(&other, Some(&conn2), false, &hasher, &EnvStore, 1, &bar).replaying();
        let unit = replay.replay(&other.defs.sources["bank"], loads[0]);
        assert_eq!(unit.status, UnitStatus::Loaded, "{unit:?}");
        let rows = "SELECT string_agg(amount::VARCHAR || '@' || epoch_us(load_ts::TIMESTAMP), ',' \
                    ORDER BY amount) FROM main.tx";
        let a: String = conn.query_row(rows, [], |r| r.get(0)).expect("rows");
        let b: String = conn2.query_row(rows, [], |r| r.get(0)).expect("rows");
        assert_eq!(a, b);
        assert_eq!(
            project.lake.manifest().expect("manifest").loads().count(),
            1
        );
    }
}
