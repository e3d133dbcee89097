//! `ingestor sync`: load new and changed inputs into the vault.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{Cli, SyncArgs};
use crate::db;
use crate::error::EXIT_OK;
use crate::pipeline::{self, Pipeline, SourceReport};
use crate::plan::SyncPlan;
use crate::secrets::Secrets;
use crate::timings::Timings;
use crate::vault::meta;

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
    // Only a sync catches signals: other commands end at once, as they always did.
    crate::interrupt::install();
    let plan = SyncPlan::new(cli, &args.sources, args.force, args.dry_run)?;
    let mut timings = Timings::default();
    let started = std::time::Instant::now();
    let mut reconciled = 0;
    let conn = if plan.dry_run {
        db::open_existing(&plan.project.database)?
    } else {
        let conn = crate::vault::open_for_writing(
            &plan.project.database,
            &plan.project.defs,
            &plan.hasher,
        )?;
        // Loads a crash kept out of the lake's manifest are listed before new ones.
        let vault = plan.project.display(&plan.project.database);
        reconciled = pipeline::Pipeline::reconcile_manifest(&conn, &plan.project.lake, &vault)?;
        Some(conn)
    };
    timings.add("open vault", started.elapsed());
    let run_id = match (&conn, plan.dry_run) {
        (Some(c), false) => {
            // Runs left `running` by a killed process end as `interrupted`.
            meta::mark_interrupted(c)?;
            plan.project.lake.remove_stale_temp_files();
            Some(meta::start_run(c, "sync")?)
        }
        _ => None,
    };
    let json = args.json || args.format == crate::cli::ReportFormat::Json;
    let progress = progress_bar(cli.quiet || json);
    let mut pipeline = Pipeline::new(
        &plan.project,
        conn.as_ref(),
        plan.dry_run,
        &plan.hasher,
        &Secrets,
        run_id.unwrap_or(0),
        &progress,
    );
    // A signal interrupts the statement in flight (its unit rolls back) and no further
    // unit starts; the run is then marked `interrupted`.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = conn.as_ref().map(|c| {
        let handle = c.interrupt_handle();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if crate::interrupt::requested() {
                    handle.interrupt();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    });
    let mut reports = Vec::new();
    for id in &plan.sources {
        if crate::interrupt::requested() {
            break;
        }
        let report = pipeline.sync_source(&plan.project.defs.sources[id], plan.force);
        progress.suspend(|| print_errors(&report));
        reports.push(report);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(w) = watcher {
        let _ = w.join();
    }
    progress.finish_and_clear();
    timings.merge(&pipeline.timings);
    let interrupted = crate::interrupt::requested();
    let code = if interrupted {
        crate::interrupt::EXIT_INTERRUPTED
    } else {
        reports.iter().map(|r| r.exit_code).max().unwrap_or(EXIT_OK)
    };
    if let (Some(c), Some(run)) = (&conn, run_id) {
        let tally = pipeline::tally(&reports);
        meta::finish_run(c, run, code, tally)?;
        // Later syncs need not look at this run's loads, or earlier ones, again.
        if pipeline.all_listed() && (tally.loaded > 0 || reconciled > 0) {
            meta::set_vault_value(c, meta::LISTED_RUN, &run.to_string())?;
        }
    }
    if cli.verbose > 0 {
        for line in timings.lines() {
            eprintln!("time {line}");
        }
        eprintln!("time total: {:.3}s", started.elapsed().as_secs_f64());
    }
    if interrupted {
        eprintln!(
            "interrupted: the units committed before the signal are in the vault; the next \
             sync goes on from there"
        );
    }
    if json {
        let doc = RunReport {
            run_id,
            dry_run: plan.dry_run,
            exit_code: code,
            sources: reports,
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else if !cli.quiet {
        print_human(&reports)?;
    }
    Ok(code)
}

/// A progress line on a terminal (`{source} {unit}: {rows} rows`), nothing otherwise.
pub fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix}{msg}: {pos} rows, {elapsed}")
            .expect("valid template"),
    );
    bar
}

/// A source's errors on stderr.
pub fn print_errors(report: &SourceReport) {
    for unit in &report.units {
        if let Some(e) = &unit.error {
            eprintln!("error: source `{}`: {e}", report.source);
        }
    }
    if let Some(e) = &report.error {
        eprintln!("error: source `{}`: {e}", report.source);
    }
}

/// One line per unit on stdout.
pub fn print_human(reports: &[SourceReport]) -> std::io::Result<()> {
    for r in reports {
        if r.units.is_empty() {
            match &r.error {
                Some(e) => outln!("{:<16} failed     {e}", r.source)?,
                None => outln!("{:<16} no inputs", r.source)?,
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
            let why = if u.definition_changed {
                "  (definition changed)"
            } else {
                ""
            };
            let line = format!(
                "{:<16} {:<10} {}{why}  {detail}",
                r.source,
                u.status.as_str(),
                u.path
            );
            outln!("{}", line.trim_end())?;
        }
    }
    Ok(())
}
