//! Feeding Arrow batches to DuckDB as a table: `ingestor_feed(<token>)`.
//!
//! An appender converts and appends on the thread that calls it, one core. A feed is a
//! table function DuckDB scans on every core: `INSERT INTO t SELECT … FROM
//! ingestor_feed(7)` pulls batches from Rust while the input is still being read, each
//! DuckDB thread converting its own slices, and the INSERT compresses row groups on every
//! core as they fill. Constant columns are better written as SQL literals in that INSERT
//! than sent as Arrow columns.
//!
//! A feed may stop early, after a number of rows, so that one unit can be moved in
//! several statements (see `Registered::pause_after`): whatever the caller collects per
//! statement stays bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use duckdb::arrow::datatypes::SchemaRef;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{
    record_batch_to_duckdb_data_chunk, to_duckdb_logical_type_for_field, BindInfo, InitInfo,
    TableFunctionInfo, VTab,
};
use duckdb::Connection;

/// The table function's name.
pub const FUNCTION: &str = "ingestor_feed";

/// Rows DuckDB takes per call: its vector size (STANDARD_VECTOR_SIZE).
const VECTOR: usize = 2048;

/// Where a feed's batches come from: the next batch, `None` at the end.
pub type Source = Box<dyn FnMut() -> anyhow::Result<Option<RecordBatch>> + Send>;

static FEEDS: LazyLock<Mutex<HashMap<u64, Arc<Feed>>>> = LazyLock::new(Default::default);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Take a lock even if another thread panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Make `ingestor_feed` known to a connection.
pub fn register(conn: &Connection) -> duckdb::Result<()> {
    conn.register_table_function::<FeedTable>(FUNCTION)
}

/// Batches for DuckDB to scan, registered under a token while it lives.
pub struct Feed {
    token: u64,
    schema: SchemaRef,
    state: Mutex<State>,
}

struct State {
    source: Option<Source>,
    current: Option<RecordBatch>,
    offset: usize,
    /// Rows handed out since the feed last resumed.
    given: usize,
    /// Stop (end this scan) once `given` reaches this; `usize::MAX` for never.
    pause_after: usize,
    ended: bool,
    error: Option<anyhow::Error>,
}

/// A feed registered for as long as this value lives.
pub struct Registered {
    feed: Arc<Feed>,
}

impl Feed {
    /// Register batches of `schema` from `source`.
    pub fn register(schema: SchemaRef, source: Source) -> Registered {
        let feed = Arc::new(Feed {
            token: NEXT.fetch_add(1, Ordering::Relaxed),
            schema,
            state: Mutex::new(State {
                source: Some(source),
                current: None,
                offset: 0,
                given: 0,
                pause_after: usize::MAX,
                ended: false,
                error: None,
            }),
        });
        lock(&FEEDS).insert(feed.token, feed.clone());
        Registered { feed }
    }

    /// The next slice of at most one vector, or `None` when this scan is over.
    fn next_slice(&self) -> Result<Option<RecordBatch>, String> {
        let mut state = lock(&self.state);
        loop {
            if state.error.is_some() {
                return Err("the input failed while it was being loaded".into());
            }
            if state.given >= state.pause_after {
                return Ok(None);
            }
            if let Some(batch) = &state.current {
                if state.offset < batch.num_rows() {
                    let len = VECTOR.min(batch.num_rows() - state.offset);
                    let slice = batch.slice(state.offset, len);
                    state.offset += len;
                    state.given += len;
                    return Ok(Some(slice));
                }
                state.current = None;
            }
            if state.ended {
                return Ok(None);
            }
            let Some(source) = state.source.as_mut() else {
                return Ok(None);
            };
            match source() {
                Ok(Some(batch)) => {
                    state.current = Some(batch);
                    state.offset = 0;
                }
                Ok(None) => state.ended = true,
                Err(e) => state.error = Some(e),
            }
        }
    }
}

impl Registered {
    /// The SQL that scans this feed.
    pub fn sql(&self) -> String {
        format!("{FUNCTION}({})", self.feed.token)
    }

    /// End each scan after about `rows` rows (at a vector's end); `resume` goes on.
    pub fn pause_after(&self, rows: usize) {
        lock(&self.feed.state).pause_after = rows;
    }

    /// Let the next scan go on where the last one stopped.
    pub fn resume(&self) {
        lock(&self.feed.state).given = 0;
    }

    /// Whether every batch of the source has been handed out.
    pub fn is_done(&self) -> bool {
        let state = lock(&self.feed.state);
        state.ended && state.current.is_none() || state.error.is_some()
    }

    /// The error the source returned, if any: it, not DuckDB's report of it, is what
    /// the user needs to see.
    pub fn take_error(&self) -> Option<anyhow::Error> {
        lock(&self.feed.state).error.take()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&FEEDS).remove(&self.feed.token);
        // The source (and the channel it reads) goes now, even if DuckDB still holds
        // the feed in a statement's bind data.
        let mut state = lock(&self.feed.state);
        state.source = None;
        state.current = None;
        state.ended = true;
    }
}

/// The table function.
struct FeedTable;

impl VTab for FeedTable {
    type BindData = Arc<Feed>;
    type InitData = ();

    fn bind(bind: &BindInfo) -> Result<Self::BindData, Box<dyn std::error::Error>> {
        caught("binding the feed", || Self::bind_inner(bind))
    }

    fn init(init: &InitInfo) -> Result<Self::InitData, Box<dyn std::error::Error>> {
        caught("starting the feed", || {
            // Every DuckDB thread may pull: slicing is under the feed's lock, converting
            // into DuckDB's vectors is not.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            init.set_max_threads(threads as u64);
            Ok(())
        })
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        caught("reading the input", || {
            match func.get_bind_data().next_slice()? {
                Some(slice) => record_batch_to_duckdb_data_chunk(&slice, output)?,
                None => output.set_len(0),
            }
            Ok(())
        })
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![LogicalTypeHandle::from(LogicalTypeId::Bigint)])
    }
}

/// Run a callback DuckDB makes into Rust so that a panic in it becomes DuckDB's error
/// (the statement fails, the unit rolls back) instead of unwinding into C++, which
/// aborts the process. A C++ exception thrown under it cannot be caught here; the limits
/// on values and columns keep DuckDB from throwing on inputs.
fn caught<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, Box<dyn std::error::Error>>,
) -> Result<T, Box<dyn std::error::Error>> {
    crate::readers::catch_panic(f).unwrap_or_else(|why| Err(format!("{what} failed: {why}").into()))
}

impl FeedTable {
    fn bind_inner(bind: &BindInfo) -> Result<Arc<Feed>, Box<dyn std::error::Error>> {
        let token = bind.get_parameter(0).to_int64() as u64;
        let feed = lock(&FEEDS)
            .get(&token)
            .cloned()
            .ok_or_else(|| format!("{FUNCTION}({token}) is not a feed of this process"))?;
        for field in feed.schema.fields() {
            bind.add_result_column(field.name(), to_duckdb_logical_type_for_field(field)?);
        }
        Ok(feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::arrow::array::{ArrayRef, Int64Array};
    use duckdb::arrow::datatypes::{DataType, Field, Schema};

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("duckdb");
        register(&conn).expect("register");
        conn.execute_batch("CREATE TABLE t (n BIGINT)")
            .expect("table");
        conn
    }

    /// Batches of `sizes` rows numbering 0.. in order.
    fn numbers(sizes: &[usize]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut next = 0i64;
        let batches = sizes
            .iter()
            .map(|&size| {
                let values: Vec<i64> = (next..next + size as i64).collect();
                next += size as i64;
                let column: ArrayRef = Arc::new(Int64Array::from(values));
                RecordBatch::try_new(schema.clone(), vec![column]).expect("batch")
            })
            .collect();
        (schema, batches)
    }

    fn stats(conn: &Connection) -> (i64, i64, i64) {
        conn.query_row(
            "SELECT count(*), count(DISTINCT n), sum(n) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("stats")
    }

    /// Issue 12: a panic in the batches DuckDB pulls fails the statement; the process
    /// lives on.
    #[test]
    fn a_panic_behind_the_feed_is_an_error_of_the_statement() {
        let conn = conn();
        let (schema, _) = numbers(&[1]);
        let feed = Feed::register(schema, Box::new(|| panic!("a reader bug")));
        let err = conn
            .execute_batch(&format!("INSERT INTO t SELECT * FROM {}", feed.sql()))
            .expect_err("the statement fails");
        assert!(
            err.to_string()
                .contains("reading the input failed: a reader bug"),
            "{err}"
        );
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 0);
    }

    #[test]
    fn every_row_arrives_once_across_batches_and_threads() {
        let conn = conn();
        let (schema, batches) = numbers(&[5000, 1, 0, 70_000, 2048]);
        let mut batches = batches.into_iter();
        let feed = Feed::register(schema, Box::new(move || Ok(batches.next())));
        let n = conn
            .execute(&format!("INSERT INTO t SELECT * FROM {}", feed.sql()), [])
            .expect("insert");
        let total = 5000 + 1 + 70_000 + 2048;
        assert_eq!(n, total);
        assert_eq!(
            stats(&conn),
            (total as i64, total as i64, (0..total as i64).sum())
        );
        assert!(feed.is_done());
    }

    #[test]
    fn a_paused_feed_goes_on_where_it_stopped() {
        let conn = conn();
        let (schema, batches) = numbers(&[10_000; 5]);
        let mut batches = batches.into_iter();
        let feed = Feed::register(schema, Box::new(move || Ok(batches.next())));
        feed.pause_after(12_000);
        let insert = format!("INSERT INTO t SELECT * FROM {}", feed.sql());
        let mut statements = Vec::new();
        loop {
            statements.push(conn.execute(&insert, []).expect("insert"));
            if feed.is_done() {
                break;
            }
            feed.resume();
        }
        // At most one vector beyond the pause each time, and nothing twice or lost.
        assert!(statements.len() >= 4, "{statements:?}");
        assert!(
            statements.iter().all(|&n| n <= 12_000 + VECTOR),
            "{statements:?}"
        );
        assert_eq!(statements.iter().sum::<usize>(), 50_000);
        assert_eq!(stats(&conn), (50_000, 50_000, (0..50_000).sum()));
    }

    #[test]
    fn the_sources_own_error_is_kept_for_the_caller() {
        let conn = conn();
        let (schema, batches) = numbers(&[3000, 3000]);
        let mut batches = batches.into_iter();
        let feed = Feed::register(
            schema,
            Box::new(move || match batches.next() {
                Some(b) => Ok(Some(b)),
                None => Err(anyhow::anyhow!("line 6002 of in/x.csv is broken")),
            }),
        );
        let err = conn
            .execute(&format!("INSERT INTO t SELECT * FROM {}", feed.sql()), [])
            .expect_err("the scan fails");
        assert!(err.to_string().contains("the input failed"), "{err}");
        let source_error = feed.take_error().expect("kept");
        assert_eq!(source_error.to_string(), "line 6002 of in/x.csv is broken");
    }

    #[test]
    fn a_dropped_registration_is_no_longer_found() {
        let conn = conn();
        let (schema, _) = numbers(&[]);
        let feed = Feed::register(schema, Box::new(|| Ok(None)));
        let sql = format!("INSERT INTO t SELECT * FROM {}", feed.sql());
        drop(feed);
        let err = conn.execute(&sql, []).expect_err("gone");
        assert!(err.to_string().contains("is not a feed"), "{err}");
    }
}
