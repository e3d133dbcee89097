//! Arguments and definitions resolved into one plan before any input is touched.

use std::path::{Path, PathBuf};

use crate::cli::Cli;
use crate::defs::Definitions;
use crate::lake::Lake;
use crate::secrets::{SecretStore, Secrets};
use crate::vault::hash::Kdf;
use crate::vault::RecipeHasher;

/// A project as one command sees it: definitions plus where the vault and lake are.
#[derive(Debug, Clone)]
pub struct Project {
    /// Every definition, checked.
    pub defs: Definitions,
    /// The DuckDB file (`--db` wins over ingestor.toml).
    pub database: PathBuf,
    /// The lake.
    pub lake: Lake,
}

impl Project {
    /// Load the project the command line points at.
    pub fn load(cli: &Cli) -> anyhow::Result<Project> {
        Project::open(&cli.dir, cli.db.clone())
    }

    /// Load the project in `dir`; `database` overrides the one ingestor.toml names.
    pub fn open(dir: &Path, database: Option<PathBuf>) -> anyhow::Result<Project> {
        let defs = Definitions::load(dir)?;
        let database = database.unwrap_or_else(|| defs.database_path());
        let lake = Lake::new(defs.lake_path());
        Ok(Project {
            defs,
            database,
            lake,
        })
    }

    /// A path as the user knows it: relative to the project when it is inside it.
    pub fn display(&self, path: &Path) -> String {
        relative(&self.defs.dir, path)
    }

    /// The largest value an input of any reader but CSV (which checks its own
    /// `max_value_bytes` as it reads) may hold, in bytes: `[limits] max_value_bytes`, else
    /// a fifth of DuckDB's memory limit (at most 16 MiB).
    pub fn max_value_bytes(&self) -> usize {
        let project = &self.defs.project;
        project.limits.max_value_bytes.unwrap_or_else(|| {
            let memory = project
                .duckdb
                .memory_limit
                .as_deref()
                .unwrap_or(crate::defs::project::DEFAULT_MEMORY_LIMIT);
            let fifth = crate::defs::parse_bytes(memory).map_or(u64::MAX, |m| m / 5);
            (crate::readers::csv::MAX_VALUE_BYTES as u64).min(fifth) as usize
        })
    }

    /// An input unit may have at most `[limits] max_columns` columns.
    pub fn check_width(&self, name: &str, columns: usize) -> Result<(), crate::error::ReadError> {
        let limit = self
            .defs
            .project
            .limits
            .max_columns
            .unwrap_or(crate::defs::project::DEFAULT_MAX_COLUMNS);
        if columns > limit {
            return Err(crate::error::ReadError::Invalid {
                path: name.to_string(),
                message: format!(
                    "it has {columns} columns, more than the limit of {limit} (`max_columns` \
                     under [limits] in ingestor.toml raises it)"
                ),
            });
        }
        Ok(())
    }

    /// The hasher the recipe asks for: keyed when `[hash] key_secret` names a secret.
    pub fn hasher(&self) -> anyhow::Result<RecipeHasher> {
        Ok(match &self.defs.project.hash.key_secret {
            None => RecipeHasher::plain(),
            Some(name) => {
                // An empty value counts as no value (exit 5): an empty key would key nothing.
                let key = Secrets.get(name)?;
                let kdf = self.key_derivation()?;
                RecipeHasher::keyed_with(key.expose(), &kdf).map_err(crate::error::UsageError)?
            }
        })
    }

    /// How this project's vault key is derived: as the vault records it; for a new vault
    /// (or one rebuilt from the lake), Argon2id with the lake's salt, made once.
    fn key_derivation(&self) -> anyhow::Result<Kdf> {
        if let Some(conn) = crate::db::open_read_only(&self.database)? {
            if crate::vault::meta::vault_value(&conn, "hash_keyed").as_deref() == Some("true") {
                return Ok(match crate::vault::meta::vault_value(&conn, "hash_kdf") {
                    None => Kdf::Blake3,
                    Some(text) => Kdf::parse(&text).ok_or_else(|| {
                        crate::error::VaultError::Refused(format!(
                            "the vault records a key derivation this ingestor does not know: {text}"
                        ))
                    })?,
                });
            }
        }
        Ok(Kdf::argon2id(self.lake.key_salt()?))
    }
}

/// Where a project's vault and lake are, from `ingestor.toml` alone: for the commands
/// that read the vault or the lake and need no tag or source (`sql`, `status`, `runs`,
/// `lake verify`), so that a broken definition file does not stop them.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The project folder.
    pub dir: PathBuf,
    /// The DuckDB file (`--db` wins over ingestor.toml).
    pub database: PathBuf,
    /// The lake.
    pub lake: Lake,
}

impl Paths {
    /// The paths of the project the command line points at.
    pub fn load(cli: &Cli) -> anyhow::Result<Paths> {
        let config = crate::defs::project::ProjectConfig::load(&cli.dir)?;
        Ok(Paths {
            database: cli
                .db
                .clone()
                .unwrap_or_else(|| cli.dir.join(&config.database)),
            lake: Lake::new(cli.dir.join(&config.lake)),
            dir: cli.dir.clone(),
        })
    }

    /// A path as the user knows it: relative to the project when it is inside it.
    pub fn display(&self, path: &Path) -> String {
        relative(&self.dir, path)
    }
}

/// `path` relative to the project folder `dir` when it is inside it.
fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// What `sync` will do.
pub struct SyncPlan {
    /// The project.
    pub project: Project,
    /// Sources to sync, by name, in name order.
    pub sources: Vec<String>,
    /// Hashing, resolved (the key secret read) before any I/O.
    pub hasher: RecipeHasher,
    /// Reload inputs already loaded.
    pub force: bool,
    /// Write nothing.
    pub dry_run: bool,
}

impl SyncPlan {
    /// Resolve the plan; fails on definition errors and missing secrets.
    pub fn new(cli: &Cli, names: &[String], force: bool, dry_run: bool) -> anyhow::Result<Self> {
        let project = Project::load(cli)?;
        let sources = project
            .defs
            .select(names)?
            .into_iter()
            .map(|s| s.id.clone())
            .collect();
        let hasher = project.hasher()?;
        Ok(SyncPlan {
            project,
            sources,
            hasher,
            force,
            dry_run,
        })
    }
}
