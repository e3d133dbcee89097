//! The pipeline's inner loop: one unit through its reader, the contract and the vault
//! writer, in one transaction, on four threads.

use std::time::Instant;

use anyhow::Context as _;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::Connection;
use indicatif::ProgressBar;

use super::InputUnit;
use crate::defs::Source;
use crate::error::ReadError;
use crate::lake;
use crate::plan::Project;
use crate::readers::OpenContext;
use crate::secrets::SecretStore;
use crate::timings::Timings;
use crate::validate::Contract;
use crate::vault::latest::Latest;
use crate::vault::writer::{RepeatedKey, WayChoice};
use crate::vault::{LoadCounts, RecipeHasher, Staged, Stager, Unit, UnitLoad};

/// What loading a unit needs besides the unit.
pub struct Context<'a> {
    pub project: &'a Project,
    pub source: &'a Source,
    pub conn: &'a Connection,
    pub hasher: &'a RecipeHasher,
    pub secrets: &'a dyn SecretStore,
    /// The reader state the source's last load saved.
    pub state: Option<&'a str>,
    pub progress: &'a ProgressBar,
}

/// A unit that loaded and committed.
pub struct Loaded {
    /// The satellite it loaded into (none for a unit without records).
    pub satellite: Option<String>,
    pub counts: LoadCounts,
    /// The reader state committed with it, if the reader had one.
    pub end_state: Option<String>,
}

/// Load one unit in one transaction, the direct way or the staged way (vault::stager).
/// Four threads work at once: one copies the original into the lake, one reads and
/// casts, one hashes (on every core), and this one appends to DuckDB; bounded channels
/// between them keep memory flat. A first load reads the original while it is copied:
/// the copy is hashed again, and the original's stat after reading must be the one it had
/// when it was hashed, so what was loaded is what the lake keeps. Without such a stat the
/// copy is made first; a retry or a replay reads the lake's copy. On error the
/// transaction is rolled back; the error comes with the rows read.
pub fn load_unit(
    ctx: &Context<'_>,
    input: &InputUnit,
    unit: Unit,
    timings: &mut Timings,
    choice: &WayChoice,
    cache: &mut Option<(String, Latest)>,
) -> Result<Loaded, (anyhow::Error, u64)> {
    let (project, source) = (ctx.project, ctx.source);
    let lake = &project.lake;
    let store = |from: &std::path::Path| {
        let start = Instant::now();
        let stored = lake.store(from, &input.hash, &input.name, &source.id);
        (stored, start.elapsed())
    };
    let read_from = match (&input.original, &input.copy_from) {
        (Some((path, _)), _) => path.clone(),
        (None, Some(from)) => {
            let (stored, spent) = store(from);
            timings.add("lake copy", spent);
            stored.map_err(|e| (e, 0))?
        }
        (None, None) => {
            let path = lake.path_of(&input.hash);
            if !path.is_file() {
                let missing = ReadError::Invalid {
                    path: input.name.clone(),
                    message: format!(
                        "its lake copy `{}` is missing; run `ingestor lake verify`",
                        path.display()
                    ),
                };
                return Err((missing.into(), 0));
            }
            path
        }
    };
    let open = OpenContext {
        path: &read_from,
        name: &input.name,
        secrets: ctx.secrets,
        state: ctx.state,
        lake: Some(&project.lake),
    };
    let mut reader = timings
        .time("read", || source.reader.open(&open))
        .map_err(|e| (e.into(), 0))?;
    project
        .check_width(&input.name, reader.columns().len())
        .map_err(|e| (e.into(), 0))?;
    if reader.no_records() {
        let end_state = reader.end_state();
        let counts =
            crate::vault::writer::record_empty(ctx.conn, &source.id, &unit, end_state.as_deref())
                .map_err(|e| (e.into(), 0))?;
        return Ok(Loaded {
            satellite: None,
            counts,
            end_state,
        });
    }
    let contract = Contract::new(&project.defs, source, &reader.schema(), &input.name)
        .map_err(|e| (e.into(), 0))?;
    let format = crate::readers::ValueFormat {
        period: reader.period(),
        ..source.reader.value_format()
    };
    // The CSV reader refuses a value over its limit as it reads it; other readers' values
    // are checked here, batch by batch.
    let max_value = (!matches!(source.reader, crate::readers::ReaderConfig::Csv(_)))
        .then(|| project.max_value_bytes());
    let mut load = UnitLoad::begin(
        ctx.conn,
        &project.defs,
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
    let progress = ctx.progress;
    let (result, rows, stager, copied, end_state) = std::thread::scope(|scope| {
        let copying = input
            .original
            .as_ref()
            .map(|(path, _)| scope.spawn(|| store(path)));
        let copied = || copying.map(|c| c.join().expect("the lake copy does not panic"));
        let reading = scope.spawn(|| {
            // Owned here, so the channel closes when this thread is done.
            let tx = typed_tx;
            let mut spent = Timings::default();
            let mut read = 0u64;
            let mut finished = false;
            loop {
                let next = spent.time("read", || {
                    crate::readers::guarded(&input.name, || reader.next_batch())
                });
                let typed = match next {
                    Ok(None) => {
                        finished = true;
                        break;
                    }
                    Err(e) => Err(e.into()),
                    Ok(Some(batch)) => {
                        read += batch.rows.len() as u64;
                        progress.set_position(read);
                        match max_value.and_then(|m| oversized(&batch, m, &input.name)) {
                            Some(e) => Err(e.into()),
                            None => spent
                                .time("cast", || contract.cast(&input.name, &batch, &format))
                                .map(|typed| (typed, batch.rows))
                                .map_err(anyhow::Error::from),
                        }
                    }
                };
                let failed = typed.is_err();
                if tx.send(typed).is_err() || failed {
                    break;
                }
            }
            // The end state counts only when every batch was read.
            let end_state = if finished { reader.end_state() } else { None };
            (spent, read, end_state)
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
                Stager::direct(source, &contract, ctx.hasher, latest, choice.more_units)
            })
        } else {
            Ok(Stager::staged(source, &contract, ctx.hasher))
        };
        let mut stager = match stager {
            Ok(s) => s,
            Err(e) => {
                drop(typed_rx);
                let (_, read, _) = reading.join().expect("the reading thread does not panic");
                return (Err(e.into()), read, None, copied(), None);
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
        let (spent, read, end_state) = reading.join().expect("the reading thread does not panic");
        timings.merge(&spent);
        (result, read, Some(stager), copied(), end_state)
    });
    let copied = copied.map(|(stored, spent)| {
        timings.add("lake copy", spent);
        stored
    });
    if let Err(e) = result {
        // A retry reads the lake's copy: if that failed, it is the error that matters.
        if e.is::<RepeatedKey>() {
            if let Some(Err(copy)) = copied {
                return Err((copy, rows));
            }
        }
        return Err((e, rows));
    }
    if let (Some(stored), Some((path, stat))) = (copied, &input.original) {
        stored.map_err(|e| (e, rows))?;
        if lake::file_stat(path) != Some(*stat) {
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
    load.save_state(end_state.clone());
    let counts = load
        .commit(&stager, timings)
        .with_context(|| format!("`{}`", input.name))
        .map_err(|e| (e, rows))?;
    if let Some(latest) = stager.into_latest() {
        *cache = Some((satellite.clone(), latest));
    }
    Ok(Loaded {
        satellite: Some(satellite),
        counts,
        end_state,
    })
}

/// A value larger than `limit` bytes in `batch`: the error naming its place, the limit and
/// how to raise it. DuckDB needs several times a value's size to take it; past its memory
/// limit it throws an exception Rust cannot catch, so such a value never reaches it.
fn oversized(batch: &crate::readers::InputBatch, limit: usize, name: &str) -> Option<ReadError> {
    use duckdb::arrow::array::{Array, BinaryArray, StringArray};
    for (c, column) in batch.data.columns().iter().enumerate() {
        let offsets: &[i32] = if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
            a.value_offsets()
        } else if let Some(a) = column.as_any().downcast_ref::<BinaryArray>() {
            a.value_offsets()
        } else {
            continue;
        };
        for (i, w) in offsets.windows(2).enumerate() {
            let size = (w[1] - w[0]) as usize;
            if size > limit {
                let field = batch.data.schema().field(c).name().clone();
                return Some(ReadError::Invalid {
                    path: name.to_string(),
                    message: format!(
                        "{}: a value of {size} bytes in column `{}`, more than the limit of \
                         {limit} bytes (`max_value_bytes` under [limits] in ingestor.toml \
                         raises it; DuckDB's memory_limit must hold five times it)",
                        batch
                            .place
                            .describe(batch.rows.get(i).copied().unwrap_or(0), c),
                        crate::validate::shorten(&field)
                    ),
                });
            }
        }
    }
    None
}
