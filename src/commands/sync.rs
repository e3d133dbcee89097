//! `ingestor sync`: load new and changed inputs into the vault.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::Connection;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{Cli, SyncArgs};
use crate::db;
use crate::defs::Source;
use crate::error::{exit_code, ReadError, VaultError, EXIT_OK};
use crate::lake;
use crate::plan::SyncPlan;
use crate::readers;
use crate::timings::Timings;
use crate::validate::Contract;
use crate::vault::latest::Latest;
use crate::vault::writer::{self, loaded_files, record_load, RepeatedKey, WayChoice};
use crate::vault::{ddl, LoadCounts, Unit, UnitLoad};
use crate::vault::{Staged, Stager};

/// The outcome of one input unit.
#[derive(Debug, Serialize)]
pub struct UnitReport {
    pub path: String,
    pub file_hash: Option<String>,
    /// loaded, skipped, failed, rejected, would_load
    pub status: &'static str,
    pub satellite: Option<String>,
    pub counts: Option<LoadCounts>,
    pub error: Option<String>,
    pub exit_code: i32,
}

/// The outcome of one source.
#[derive(Debug, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub exit_code: i32,
    pub error: Option<String>,
    pub units: Vec<UnitReport>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct RunReport {
    run_id: Option<i64>,
    dry_run: bool,
    exit_code: i32,
    sources: Vec<SourceReport>,
}

/// Run `sync`.
pub fn run(cli: &Cli, args: &SyncArgs) -> anyhow::Result<i32> {
    let plan = SyncPlan::new(cli, &args.sources, args.force, args.dry_run)?;
    let mut timings = Timings::default();
    let started = std::time::Instant::now();
    let conn = if plan.dry_run {
        db::open_existing(&plan.project.database)?
    } else {
        let conn = db::open(&plan.project.database)?;
        db::configure(&conn, &plan.project.defs.project.duckdb)?;
        ddl::ensure(&conn, &plan.project.defs, &plan.hasher)?;
        Some(conn)
    };
    timings.add("open vault", started.elapsed());
    let run_id = match (&conn, plan.dry_run) {
        (Some(c), false) => Some(writer::start_run(c, "sync")?),
        _ => None,
    };
    let progress = if cli.quiet || args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos} rows, {elapsed}")
                .expect("valid template"),
        );
        bar
    };
    let mut reports = Vec::new();
    for id in &plan.sources {
        let source = &plan.project.defs.sources[id];
        let report = sync_source(
            &plan,
            source,
            conn.as_ref(),
            run_id.unwrap_or(0),
            &progress,
            &mut timings,
        );
        for unit in &report.units {
            if let Some(e) = &unit.error {
                progress.suspend(|| eprintln!("error: source `{id}`: {e}"));
            }
        }
        if let Some(e) = &report.error {
            progress.suspend(|| eprintln!("error: source `{id}`: {e}"));
        }
        reports.push(report);
    }
    progress.finish_and_clear();
    let code = reports.iter().map(|r| r.exit_code).max().unwrap_or(EXIT_OK);
    if let (Some(c), Some(run)) = (&conn, run_id) {
        let count = |s: &str| {
            reports
                .iter()
                .flat_map(|r| &r.units)
                .filter(|u| u.status == s)
                .count() as u64
        };
        let failed = count("failed") + count("rejected");
        writer::finish_run(c, run, code, count("loaded"), count("skipped"), failed)?;
    }
    if cli.verbose > 0 {
        for line in timings.lines() {
            eprintln!("time {line}");
        }
        eprintln!("time total: {:.3}s", started.elapsed().as_secs_f64());
    }
    if args.json {
        let doc = RunReport {
            run_id,
            dry_run: plan.dry_run,
            exit_code: code,
            sources: reports,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if !cli.quiet {
        print_human(&reports);
    }
    Ok(code)
}

fn print_human(reports: &[SourceReport]) {
    for r in reports {
        if r.units.is_empty() {
            match &r.error {
                Some(e) => println!("{:<16} failed     {e}", r.source),
                None => println!("{:<16} no inputs", r.source),
            }
        }
        for u in &r.units {
            let detail = match &u.counts {
                Some(c) => format!(
                    "rows {}  new keys {}  new {}  changed {}  unchanged {}",
                    c.rows_read, c.new_keys, c.new_rows, c.changed_rows, c.unchanged_rows
                ),
                None => String::new(),
            };
            let line = format!("{:<16} {:<10} {}  {detail}", r.source, u.status, u.path);
            println!("{}", line.trim_end());
        }
    }
}

/// An input of a source, hashed.
struct Input {
    path: PathBuf,
    name: String,
    hash: String,
    size: u64,
    stat: Option<lake::FileStat>,
}

fn failed(path: String, hash: Option<String>, err: &anyhow::Error) -> UnitReport {
    let code = exit_code(err);
    UnitReport {
        path,
        file_hash: hash,
        status: if code == crate::error::EXIT_CONTRACT {
            "rejected"
        } else {
            "failed"
        },
        satellite: None,
        counts: None,
        error: Some(format!("{err:#}")),
        exit_code: code,
    }
}

fn sync_source(
    plan: &SyncPlan,
    source: &Source,
    conn: Option<&Connection>,
    run_id: i64,
    progress: &ProgressBar,
    timings: &mut Timings,
) -> SourceReport {
    let project = &plan.project;
    let mut report = SourceReport {
        source: source.id.clone(),
        exit_code: EXIT_OK,
        error: None,
        units: Vec::new(),
    };
    let paths = match source.reader.inputs(&project.defs.dir) {
        Ok(p) => p,
        Err(e) => {
            let e = anyhow::Error::new(e);
            report.exit_code = exit_code(&e);
            report.error = Some(format!("{e:#}"));
            return report;
        }
    };
    // Hash every input and keep those this source has not loaded yet.
    let loaded_before = timings.time("skip check", || match conn {
        Some(c) if !plan.force => loaded_files(c, &source.id).map_err(anyhow::Error::new),
        _ => Ok(Default::default()),
    });
    // Files whose stat is what it was when they were hashed are not read again (as git's
    // index does); --force reads everything.
    let stats = match (conn, plan.force) {
        (Some(c), false) => writer::file_stats(c, &source.id).unwrap_or_default(),
        _ => Default::default(),
    };
    let mut restat = Vec::new();
    let mut pending = Vec::new();
    for path in paths {
        let name = project.display(&path);
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
            None => timings
                .time("hash file", || lake::hash_file(&path, &name))
                .map_err(anyhow::Error::new),
        };
        let (hash, size) = match hashed {
            Ok(h) => h,
            Err(e) => {
                report.units.push(failed(name, None, &e));
                continue;
            }
        };
        let loaded = match &loaded_before {
            Ok(set) => Ok(set.contains(&hash)),
            Err(e) => Err(VaultError::Refused(format!("{e:#}"))),
        };
        if let (Ok(true), true, Some(stat)) = (&loaded, hashed_now, stat) {
            restat.push((name.clone(), hash.clone(), stat));
        }
        match loaded {
            Ok(true) => report.units.push(UnitReport {
                path: name,
                file_hash: Some(hash),
                status: "skipped",
                satellite: None,
                counts: None,
                error: None,
                exit_code: EXIT_OK,
            }),
            Ok(false) => pending.push(Input {
                path,
                name,
                hash,
                size,
                stat,
            }),
            Err(e) => report.units.push(failed(name, Some(hash), &e.into())),
        }
    }
    // The tag contract is checked on every pending input before anything is written:
    // a source that lost a field loads nothing.
    let mut ready = Vec::new();
    for input in pending {
        match timings.time("check headers", || {
            contract_of(plan, source, &input.path, &input.name)
        }) {
            Ok(_) => ready.push(input),
            Err(e) => {
                let broke_contract = exit_code(&e) == crate::error::EXIT_CONTRACT;
                let r = failed(input.name.clone(), Some(input.hash.clone()), &e);
                if let (Some(c), false) = (conn, plan.dry_run) {
                    record_failure(c, &unit_of(run_id, &input), &source.id, &r, 0);
                }
                report.units.push(r);
                if broke_contract {
                    report.error = Some(
                        "nothing of this source was loaded: it breaks its tag contract".into(),
                    );
                    ready.clear();
                    report.exit_code = report.exit_code.max(crate::error::EXIT_CONTRACT);
                    break;
                }
            }
        }
    }
    if report.error.is_some() {
        report.exit_code = report
            .units
            .iter()
            .map(|u| u.exit_code)
            .max()
            .unwrap_or(EXIT_OK)
            .max(report.exit_code);
        return report;
    }
    // Rows per byte of this source's earlier loads, to size the units (vault::writer),
    // and the latest hashdiffs of a satellite, kept from one direct unit to the next.
    let rows_per_byte = match (conn, plan.dry_run) {
        (Some(c), false) if !ready.is_empty() => rows_per_byte(c, &source.id),
        _ => 0.0,
    };
    let mut bytes_ahead: u64 = ready.iter().map(|i| i.size).sum();
    let mut cache: Option<(String, Latest)> = None;
    for input in ready {
        if plan.dry_run {
            report.units.push(UnitReport {
                path: input.name,
                file_hash: Some(input.hash),
                status: "would_load",
                satellite: None,
                counts: None,
                error: None,
                exit_code: EXIT_OK,
            });
            continue;
        }
        let conn = conn.expect("a vault is open when not a dry run");
        progress.set_message(format!("{} {}", source.id, input.name));
        progress.set_position(0);
        let unit = unit_of(run_id, &input);
        let mut choice = WayChoice {
            allow_direct: true,
            cached: cache.as_ref().map(|(sat, _)| sat.clone()),
            rows_ahead: rows_per_byte * bytes_ahead as f64,
            more_units: bytes_ahead > input.size,
        };
        bytes_ahead -= input.size;
        let outcome = loop {
            let outcome = load_unit(
                plan,
                source,
                conn,
                &input,
                unit.clone(),
                progress,
                timings,
                &choice,
                &mut cache,
            );
            match &outcome {
                // A key came twice: its last row must win, which only the staged way
                // decides; the direct attempt was rolled back.
                Err((e, _)) if e.is::<RepeatedKey>() && choice.allow_direct => {
                    choice.allow_direct = false;
                }
                _ => break outcome,
            }
        };
        match outcome {
            Ok((satellite, counts)) => {
                if let Some(stat) = input.stat {
                    restat.push((input.name.clone(), input.hash.clone(), stat));
                }
                report.units.push(UnitReport {
                    path: input.name,
                    file_hash: Some(input.hash),
                    status: "loaded",
                    satellite: Some(satellite),
                    counts: Some(counts),
                    error: None,
                    exit_code: EXIT_OK,
                });
            }
            Err((e, rows_read)) => {
                let r = failed(input.name.clone(), Some(input.hash.clone()), &e);
                record_failure(conn, &unit, &source.id, &r, rows_read);
                report.units.push(r);
            }
        }
    }
    // Loaded files, and files skipped after hashing (touched, not changed), are
    // remembered by their stat in one transaction: if it is lost, they are hashed again.
    if let (Some(c), false, false) = (conn, plan.dry_run, restat.is_empty()) {
        let _ = c.execute_batch("BEGIN TRANSACTION").and_then(|()| {
            for (name, hash, stat) in &restat {
                let _ = writer::record_stat(c, &source.id, name, hash, *stat);
            }
            c.execute_batch("COMMIT")
        });
    }
    report.exit_code = report
        .units
        .iter()
        .map(|u| u.exit_code)
        .max()
        .unwrap_or(EXIT_OK);
    report
}

/// Record a unit that failed or was rejected in `meta.loads`, so `runs` can show it. A
/// failure to record it is not worth failing the run for: the error was printed.
fn record_failure(
    conn: &Connection,
    unit: &Unit,
    source: &str,
    report: &UnitReport,
    rows_read: u64,
) {
    let counts = LoadCounts {
        rows_read,
        ..LoadCounts::default()
    };
    let _ = record_load(
        conn,
        unit,
        source,
        None,
        &counts,
        report.status,
        report.error.as_deref(),
    );
}

/// Rows per byte of the inputs this source has loaded; 0 when it has loaded none.
fn rows_per_byte(conn: &Connection, source: &str) -> f64 {
    conn.query_row(
        "SELECT sum(l.rows_read) / nullif(sum(f.size), 0) FROM meta.loads l \
         JOIN meta.files f ON f.file_hash = l.file_hash AND f.source = l.source \
         WHERE l.source = ? AND l.status = 'loaded'",
        [source],
        |r| r.get::<_, Option<f64>>(0),
    )
    .ok()
    .flatten()
    .unwrap_or(0.0)
}

fn unit_of(run_id: i64, input: &Input) -> Unit {
    Unit {
        run_id,
        file_hash: input.hash.clone(),
        path: input.name.clone(),
        size: input.size,
    }
}

/// Open an input far enough to know its columns, and check them against the tags.
fn contract_of(
    plan: &SyncPlan,
    source: &Source,
    path: &Path,
    name: &str,
) -> anyhow::Result<Contract> {
    let reader = readers::open(&source.reader, path, name)?;
    Ok(Contract::new(
        &plan.project.defs,
        source,
        &reader.schema(),
        name,
    )?)
}

/// Copy the input into the lake and load it in one transaction, the direct way or the
/// staged way (vault::stager). Four threads work at once: one copies the file into the
/// lake, one reads and casts, one hashes (on every core), and this one appends to DuckDB;
/// bounded channels between them keep memory flat. The input is read where it is, while
/// it is copied: the copy is hashed again, and the input's stat after reading must be
/// the one it had when it was hashed, so what was loaded is what the lake keeps. Where
/// the platform has no such stat, the copy is made first and read back. On error the
/// transaction is rolled back; the error comes with the rows read.
#[allow(clippy::too_many_arguments)]
fn load_unit(
    plan: &SyncPlan,
    source: &Source,
    conn: &Connection,
    input: &Input,
    unit: Unit,
    progress: &ProgressBar,
    timings: &mut Timings,
    choice: &WayChoice,
    cache: &mut Option<(String, Latest)>,
) -> Result<(String, LoadCounts), (anyhow::Error, u64)> {
    let lake = &plan.project.lake;
    let store = || {
        let start = Instant::now();
        let stored = lake.store(&input.path, &input.hash, &input.name);
        (stored, start.elapsed())
    };
    let read_from = match input.stat {
        Some(_) => input.path.clone(),
        None => {
            let (stored, spent) = store();
            timings.add("lake copy", spent);
            stored.map_err(|e| (e, 0))?
        }
    };
    let mut reader = timings
        .time("read", || {
            readers::open(&source.reader, &read_from, &input.name)
        })
        .map_err(|e| (e.into(), 0))?;
    let contract = Contract::new(&plan.project.defs, source, &reader.schema(), &input.name)
        .map_err(|e| (e.into(), 0))?;
    let format = source.reader.value_format();
    let mut load = UnitLoad::begin(
        conn,
        &plan.project.defs,
        source,
        unit,
        contract.clone(),
        choice,
    )
    .map_err(|e| (e.into(), 0))?;
    // Three stages: a reader thread parses and casts, a stager thread hashes (on every
    // core), this thread appends to DuckDB. Bounded channels keep memory flat; the latest
    // hashdiffs are read here while the first batches are parsed.
    let (typed_tx, typed_rx) =
        std::sync::mpsc::sync_channel::<anyhow::Result<(RecordBatch, Vec<i64>)>>(4);
    let (staged_tx, staged_rx) = std::sync::mpsc::sync_channel::<anyhow::Result<Staged>>(2);
    let (result, rows, stager, copied) = std::thread::scope(|scope| {
        let copying = input.stat.is_some().then(|| scope.spawn(store));
        let copied = || copying.map(|c| c.join().expect("the lake copy does not panic"));
        let reading = scope.spawn(|| {
            // Owned here, so the channel closes when this thread is done.
            let tx = typed_tx;
            let mut spent = Timings::default();
            let mut read = 0u64;
            loop {
                let next = spent.time("read", || reader.next_batch());
                let typed = match next {
                    Ok(None) => break,
                    Err(e) => Err(e.into()),
                    Ok(Some(batch)) => {
                        read += batch.rows.len() as u64;
                        progress.set_position(read);
                        spent
                            .time("cast", || contract.cast(&input.name, &batch, &format))
                            .map(|typed| (typed, batch.rows))
                            .map_err(anyhow::Error::from)
                    }
                };
                let failed = typed.is_err();
                if tx.send(typed).is_err() || failed {
                    break;
                }
            }
            (spent, read)
        });
        // The cached map is taken: if this unit fails, its updates are not the satellite's.
        let cached = cache.take();
        let stager = if load.is_direct() {
            let latest = match cached {
                Some((sat, latest)) if sat == load.satellite() => Ok(latest),
                _ => load.latest(),
            };
            // Only a later unit of this run needs the map kept current.
            latest.map(|latest| {
                Stager::direct(source, &contract, &plan.hasher, latest, choice.more_units)
            })
        } else {
            Ok(Stager::staged(source, &contract, &plan.hasher))
        };
        let mut stager = match stager {
            Ok(s) => s,
            Err(e) => {
                drop(typed_rx);
                let (_, read) = reading.join().expect("the reading thread does not panic");
                return (Err(e.into()), read, None, copied());
            }
        };
        let staging = scope.spawn(move || {
            let tx = staged_tx;
            for typed in typed_rx.iter() {
                let staged = typed.and_then(|(typed, rows)| Ok(stager.stage(&typed, &rows)?));
                let failed = matches!(staged, Err(_) | Ok(Staged::Repeat));
                if tx.send(staged).is_err() || failed {
                    return stager;
                }
            }
            // Keys new to the satellite are compared once all are known.
            if stager.finish() && stager.is_direct() {
                let _ = tx.send(Ok(Staged::Repeat));
            }
            stager
        });
        // Dropping the receiver stops the threads that are waiting to send.
        let result = if load.is_direct() {
            load.load_direct(staged_rx)
        } else {
            let appended = staged_rx.iter().try_for_each(|staged| {
                load.append(staged?)?;
                anyhow::Ok(())
            });
            drop(staged_rx);
            appended
        };
        let stager = staging.join().expect("the stager thread does not panic");
        let (spent, read) = reading.join().expect("the reading thread does not panic");
        timings.merge(&spent);
        (result, read, Some(stager), copied())
    });
    result.map_err(|e| (e, rows))?;
    if let Some((stored, spent)) = copied {
        timings.add("lake copy", spent);
        stored.map_err(|e| (e, rows))?;
        if lake::file_stat(&input.path) != input.stat {
            let changed = ReadError::Invalid {
                path: input.name.clone(),
                message: "the file changed while it was being read; sync again".into(),
            };
            return Err((changed.into(), rows));
        }
    }
    let stager = stager.expect("a stager exists when loading went on");
    timings.merge(&stager.timings);
    let satellite = load.satellite().to_string();
    let counts = load
        .commit(&stager, timings)
        .with_context(|| format!("`{}`", input.name))
        .map_err(|e| (e, rows))?;
    if let Some(latest) = stager.into_latest() {
        *cache = Some((satellite.clone(), latest));
    }
    Ok((satellite, counts))
}
