//! Errors shared across stages, and the exit codes the binary maps them to.

use std::path::PathBuf;

/// Everything worked.
pub const EXIT_OK: i32 = 0;
/// A source broke its tag contract or had rows rejected; the run finished.
pub const EXIT_CONTRACT: i32 = 1;
/// Usage or definition error (command line, `ingestor.toml`, `tags/`, `sources/`).
pub const EXIT_DEFINITION: i32 = 2;
/// A source could not be read (missing, malformed, truncated or unreadable input).
pub const EXIT_READ: i32 = 3;
/// The vault or the lake could not be written (DuckDB error, file locked, disk full).
pub const EXIT_VAULT: i32 = 4;
/// A secret named by a definition could not be found.
pub const EXIT_SECRET: i32 = 5;

/// A definition file is wrong: it names the file, the key and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum DefError {
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`{path}`: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("no source named `{name}`; sources/ defines: {known}")]
    UnknownSource { name: String, known: String },
    #[error(
        "`{}` is not an ingestor project: it has no `{sources}` folder{}; `ingestor init` \
         creates one there, or point at a project with -C DIR",
        dir.display(),
        if *has_config { "" } else { " and no ingestor.toml" }
    )]
    NotAProject {
        dir: PathBuf,
        sources: String,
        has_config: bool,
    },
}

/// The input broke the promise its tags make: a field is missing, or a value is null or of
/// the wrong type. Nothing of the input unit is written. Messages leave the source out:
/// commands put it in front.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{what} `{field}` is missing from `{file}`{hint}")]
    MissingField {
        /// "tag `transactions` field" or "primary key column"
        what: String,
        field: String,
        file: String,
        /// ", closest column: `X`" when one looks like a rename
        hint: String,
    },
    #[error("`{file}` {at}, column `{column}`: {message}")]
    BadValue {
        file: String,
        /// `line 17`, or `sheet `January` cell C17`.
        at: String,
        column: String,
        message: String,
    },
}

/// An input could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` line {line}: {message}")]
    Malformed {
        path: String,
        line: u64,
        message: String,
    },
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
    #[error("`{path}` sheet `{sheet}` cell {cell}: {message}")]
    Cell {
        path: String,
        sheet: String,
        cell: String,
        message: String,
    },
    #[error("no input matches `{pattern}`")]
    NoInput { pattern: String },
    #[error("`{path}`: {what}")]
    Secret {
        path: String,
        what: String,
        #[source]
        source: SecretError,
    },
}

/// The vault (DuckDB) or the lake could not be written.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the vault `{path}` is locked by another process{holder}{waited}; close it and retry, or wait for it with --wait")]
    Locked {
        path: PathBuf,
        holder: String,
        /// How long this process waited for it, said when it did.
        waited: String,
    },
    #[error("{context}")]
    Db {
        context: String,
        #[source]
        source: duckdb::Error,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

impl VaultError {
    /// Wrap a DuckDB error with what was being done.
    pub fn db(context: impl Into<String>) -> impl FnOnce(duckdb::Error) -> VaultError {
        let context = context.into();
        move |source| VaultError::Db { context, source }
    }
}

/// A secret could not be resolved (exit 5). It never holds the value.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SecretError {
    pub name: String,
    pub env: String,
    /// Why the OS keyring could not be asked, when it could not.
    pub keyring: Option<String>,
}

impl SecretError {
    /// Secret `name` is in neither its environment variable nor the keyring.
    pub fn missing(name: &str, keyring: Option<String>) -> Self {
        SecretError {
            name: name.to_string(),
            env: crate::secrets::env_var(name),
            keyring,
        }
    }

    fn describe(&self) -> String {
        let SecretError { name, env, keyring } = self;
        match keyring {
            None => format!(
                "secret `{name}` is not set: run `ingestor secret set {name}` (OS keyring) \
                 or export {env}"
            ),
            Some(why) => format!(
                "secret `{name}` is not set in {env}, and {why}: export {env} (on a server \
                 without a keyring, the environment is the way)"
            ),
        }
    }
}

/// A usage error found after argument parsing (clap reports its own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error chain: the first typed error found decides.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    // A missing secret decides wherever it is in the chain: an input that cannot be
    // opened without it (an encrypted PDF) is a missing secret, not an unreadable input.
    if err.chain().any(|c| c.is::<SecretError>()) {
        return EXIT_SECRET;
    }
    for cause in err.chain() {
        if cause.is::<ContractError>() {
            return EXIT_CONTRACT;
        }
        if cause.is::<DefError>() || cause.is::<UsageError>() {
            return EXIT_DEFINITION;
        }
        if cause.is::<ReadError>() {
            return EXIT_READ;
        }
        if cause.is::<VaultError>() {
            return EXIT_VAULT;
        }
        if cause.is::<SecretError>() {
            return EXIT_SECRET;
        }
    }
    EXIT_VAULT
}
