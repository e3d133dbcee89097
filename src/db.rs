//! Opening the vault: a DuckDB file that DuckDB 1.5 clients can read too; quoting, and
//! the transaction guard every write goes through. A leaf: it knows DuckDB, not the vault.

use std::path::Path;

use duckdb::Connection;

use crate::defs::project::DuckdbConfig;
use crate::error::{UsageError, VaultError};

/// Storage version new vaults are created with, so DuckDB 1.5 clients can open them.
pub const STORAGE_VERSION: &str = "v1.5.0";

/// File stems a vault may not have: DuckDB names a database after its file's stem, and a
/// database named like one of the vault's schemas makes `vault.hub_x` ambiguous in every
/// client ("Ambiguous reference to catalog or schema").
pub const RESERVED_STEMS: [&str; 5] = ["vault", "meta", "main", "temp", "system"];

/// Refuse a vault path whose database name would clash with a schema.
pub fn check_path(path: &Path) -> Result<(), UsageError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if RESERVED_STEMS.contains(&stem.as_str()) {
        return Err(UsageError(format!(
            "the vault file `{}` would be named `{stem}` inside DuckDB, the name of one of \
             its schemas, and `{stem}.<table>` would be ambiguous in every client; choose \
             another file name (`database` in ingestor.toml, or --db)",
            path.display()
        )));
    }
    Ok(())
}

/// Refuse a file that is not a DuckDB database before DuckDB opens it: DuckDB would try
/// to download an extension for some (SQLite), and write into others.
fn check_is_duckdb(path: &Path) -> Result<(), VaultError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(16);
    let read = std::fs::File::open(path).and_then(|f| f.take(16).read_to_end(&mut head));
    if read.is_err() || head.is_empty() {
        // Unreadable or empty: DuckDB says why, or makes a database of it.
        return Ok(());
    }
    if head.len() >= 12 && &head[8..12] == b"DUCK" {
        return Ok(());
    }
    let what = if head.starts_with(b"SQLite format 3") {
        "an SQLite database"
    } else {
        "not a DuckDB database"
    };
    Err(VaultError::Refused(format!(
        "`{}` is {what}, so it cannot be the vault; it was left as it was. Point `database` \
         in ingestor.toml (or --db) at another file",
        path.display()
    )))
}

/// How long to wait for a vault another process holds (`--wait`), in milliseconds.
static LOCK_WAIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Wait up to `wait` for a vault another process holds, from now on in this process.
pub fn set_lock_wait(wait: std::time::Duration) {
    LOCK_WAIT_MS.store(
        wait.as_millis().min(u64::MAX as u128) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Open with `open`, trying again while another process holds the lock, up to the wait
/// `--wait` set; the error then says how long this process waited.
fn open_waiting(
    path: &Path,
    mut open: impl FnMut() -> Result<Connection, duckdb::Error>,
) -> Result<Connection, VaultError> {
    let wait =
        std::time::Duration::from_millis(LOCK_WAIT_MS.load(std::sync::atomic::Ordering::Relaxed));
    let start = std::time::Instant::now();
    loop {
        match open().map_err(|e| classify(path, e)) {
            Err(VaultError::Locked { .. }) if start.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(VaultError::Locked { path, holder, .. }) if !wait.is_zero() => {
                return Err(VaultError::Locked {
                    path,
                    holder,
                    waited: format!(" (waited {:.0} s)", start.elapsed().as_secs_f64()),
                })
            }
            other => return other,
        }
    }
}

/// Open an existing vault for reading only: read-only commands (`sql`, `status`, `runs`,
/// `schema`) share the file with each other instead of taking turns. `None` when there is
/// no vault yet.
pub fn open_read_only(path: &Path) -> Result<Option<Connection>, anyhow::Error> {
    open_if_there(path, || {
        let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?;
        Connection::open_with_flags(path, config)
    })
}

/// An existing vault at `path` opened by `open` (waiting for another writer as the
/// command allows), after the checks every opening makes; `None` when there is none.
fn open_if_there(
    path: &Path,
    open: impl Fn() -> duckdb::Result<Connection>,
) -> Result<Option<Connection>, anyhow::Error> {
    check_path(path)?;
    if !path.exists() {
        return Ok(None);
    }
    check_is_duckdb(path)?;
    let conn = open_waiting(path, open)?;
    no_extensions(&conn)?;
    Ok(Some(conn))
}

/// Open (creating if needed) the vault at `path`.
pub fn open(path: &Path) -> Result<Connection, anyhow::Error> {
    check_path(path)?;
    // A missing file, or an empty one (made by `touch`, or left by a failed create),
    // becomes a vault in the storage version DuckDB 1.5 clients read.
    let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
    if empty {
        std::fs::remove_file(path).map_err(|source| VaultError::Io {
            context: format!("cannot replace the empty file `{}`", path.display()),
            source,
        })?;
    }
    if !path.exists() {
        create(path)?;
    }
    check_is_duckdb(path)?;
    let conn = open_waiting(path, || Connection::open(path))?;
    no_extensions(&conn)?;
    Ok(conn)
}

/// Never let DuckDB load or download an extension: a query that needs one (time zones
/// through ICU, for one) fails with DuckDB's own message instead of reaching the network.
fn no_extensions(conn: &Connection) -> Result<(), VaultError> {
    conn.execute_batch(
        "SET autoinstall_known_extensions = false; SET autoload_known_extensions = false",
    )
    .map_err(VaultError::db("cannot configure DuckDB"))
}

/// Quote an identifier for DuckDB.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string literal for DuckDB.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An open transaction. `commit` ends it; dropping it otherwise (an early return, `?`, a
/// panic unwinding) rolls it back, so no error path can leave half a change visible.
#[must_use = "a transaction not committed is rolled back when dropped"]
pub struct Transaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Transaction<'c> {
    /// `BEGIN TRANSACTION` on `conn`; `what` says what the transaction is for, in errors.
    pub fn begin(conn: &'c Connection, what: &str) -> Result<Self, VaultError> {
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(VaultError::db(format!("cannot begin {what}")))?;
        Ok(Transaction { conn, open: true })
    }

    /// The connection the transaction runs on.
    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// Commit; on error the transaction is rolled back and the error returned.
    pub fn commit(self, what: &str) -> Result<(), VaultError> {
        self.commit_after("", what)
    }

    /// Run `sql` (statements, or nothing) and commit, in one batch; on error the
    /// transaction is rolled back and the error returned.
    pub fn commit_after(mut self, sql: &str, what: &str) -> Result<(), VaultError> {
        self.open = false;
        let batch = if sql.is_empty() {
            "COMMIT".to_string()
        } else {
            format!("{sql}; COMMIT")
        };
        match self.conn.execute_batch(&batch) {
            Ok(()) => Ok(()),
            Err(e) => {
                // A failed COMMIT may leave the transaction open (DuckDB aborts it, but
                // say so explicitly); the error that matters is the commit's.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(VaultError::db(format!("cannot commit {what}"))(e))
            }
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an unfinished transaction may stay visible. A rollback that fails
            // means the connection already aborted it: nothing to undo either way.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// DuckDB's folder for what it writes out beyond `memory_limit`: `<vault>.tmp`.
pub fn spill_dir(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    std::path::PathBuf::from(name)
}

/// Remove a spill folder a killed process left. Call only while holding the vault open
/// for writing, before any load.
pub fn remove_spill(path: &Path) -> Result<(), VaultError> {
    let dir = spill_dir(path);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(VaultError::Io {
            context: format!("cannot remove DuckDB's leftover folder `{}`", dir.display()),
            source,
        }),
    }
}

/// Apply `[duckdb]` settings of ingestor.toml to a connection.
pub fn configure(conn: &Connection, settings: &DuckdbConfig) -> anyhow::Result<()> {
    // Satellite rows carry their own position (row_number); their order in the table means
    // nothing, and not keeping it lets DuckDB insert on every core.
    conn.execute_batch("SET preserve_insertion_order = false")
        .map_err(VaultError::db("cannot configure DuckDB"))?;
    let limit = settings
        .memory_limit
        .as_deref()
        .unwrap_or(DEFAULT_MEMORY_LIMIT);
    conn.execute_batch(&format!("SET memory_limit = {}", literal(limit)))
        .map_err(|e| {
            UsageError(format!(
                "`[duckdb] memory_limit = {limit:?}` in ingestor.toml: DuckDB does not take it ({e})"
            ))
        })?;
    Ok(())
}

pub use crate::defs::project::DEFAULT_MEMORY_LIMIT;

/// Open an existing vault without creating one; `None` when there is none yet.
pub fn open_existing(path: &Path) -> Result<Option<Connection>, anyhow::Error> {
    open_if_there(path, || Connection::open(path))
}

/// Create an empty database file with the compatible storage version.
fn create(path: &Path) -> Result<(), VaultError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| VaultError::Io {
            context: format!("cannot create `{}`", dir.display()),
            source,
        })?;
    }
    let mem = Connection::open_in_memory().map_err(VaultError::db("cannot start DuckDB"))?;
    let quoted = path.to_string_lossy().replace('\'', "''");
    mem.execute_batch(&format!(
        "ATTACH '{quoted}' AS new_vault (STORAGE_VERSION '{STORAGE_VERSION}'); DETACH new_vault;"
    ))
    .map_err(|e| classify(path, e))
}

/// Name the lock holder when DuckDB says the file is locked.
fn classify(path: &Path, err: duckdb::Error) -> VaultError {
    let text = err.to_string();
    if text.contains("Could not set lock") || text.contains("Conflicting lock") {
        let holder = text
            .find("PID ")
            .map(|i| {
                let pid: String = text[i + 4..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                format!(" (PID {pid})")
            })
            .unwrap_or_default();
        return VaultError::Locked {
            path: path.to_path_buf(),
            holder,
            waited: String::new(),
        };
    }
    VaultError::Db {
        context: format!("cannot open the vault `{}`", path.display()),
        source: err,
    }
}
