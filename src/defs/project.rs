//! The project file (`ingestor.toml`): where definitions, the vault and the lake live.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::DefError;

/// `ingestor.toml`; every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Path of the DuckDB vault, relative to the project. DuckDB names the database after
    /// the file's stem, so a stem equal to a schema of the vault is refused (see `db`).
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// Folder of the content-addressed lake.
    #[serde(default = "default_lake")]
    pub lake: PathBuf,
    /// Folder of tag definitions.
    #[serde(default = "default_tags")]
    pub tags: PathBuf,
    /// Folder of source definitions.
    #[serde(default = "default_sources")]
    pub sources: PathBuf,
    /// Hashing options.
    #[serde(default)]
    pub hash: HashConfig,
    /// Settings passed to DuckDB.
    #[serde(default)]
    pub duckdb: DuckdbConfig,
    /// Limits on what an input may be.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// The default of `[limits] max_columns`: a spreadsheet's own limit (XFD is column
/// 16,384), so any workbook passes and only a runaway header is refused.
pub const DEFAULT_MAX_COLUMNS: usize = 16_384;

/// `[limits]` in `ingestor.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The most columns an input unit may have (`DEFAULT_MAX_COLUMNS` when unset): each
    /// is a column of the satellite, and a header of a million names (a file that is not
    /// what it seems) would make a table no one can use.
    #[serde(default)]
    pub max_columns: Option<usize>,
    /// The largest value an input may hold, in bytes, for every reader but CSV (which
    /// has its own `max_value_bytes`): by default a fifth of DuckDB's memory limit, at
    /// most 16 MiB, which DuckDB holds without running out of memory.
    #[serde(default)]
    pub max_value_bytes: Option<usize>,
}

/// `[duckdb]` in `ingestor.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuckdbConfig {
    /// DuckDB's `memory_limit` for a sync, such as "512MB"; `DEFAULT_MEMORY_LIMIT`
    /// when unset.
    /// Large loads spill to disk past it, so memory stays flat as inputs grow.
    #[serde(default)]
    pub memory_limit: Option<String>,
}

/// `[hash]` in `ingestor.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashConfig {
    /// Name of a secret whose value keys BLAKE3 (keyed hub keys); none = plain BLAKE3.
    #[serde(default)]
    pub key_secret: Option<String>,
}

fn default_database() -> PathBuf {
    "ingestor.duckdb".into()
}
fn default_lake() -> PathBuf {
    "lake".into()
}
fn default_tags() -> PathBuf {
    "tags".into()
}
fn default_sources() -> PathBuf {
    "sources".into()
}

impl Default for ProjectConfig {
    fn default() -> Self {
        ProjectConfig {
            database: default_database(),
            lake: default_lake(),
            tags: default_tags(),
            sources: default_sources(),
            hash: HashConfig::default(),
            duckdb: DuckdbConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl ProjectConfig {
    /// Load `DIR/ingestor.toml`, or the defaults when there is none.
    pub fn load(dir: &Path) -> Result<Self, DefError> {
        let path = dir.join("ingestor.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let config: ProjectConfig = toml::from_str(&text).map_err(|e| DefError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                // Checked before any vault is opened or made.
                if let Some(limit) = &config.duckdb.memory_limit {
                    if super::parse_bytes(limit).is_none() {
                        return Err(DefError::Parse {
                            path,
                            message: format!(
                                "`[duckdb] memory_limit = {limit:?}` is not a size such as `512MB` or `2GiB`"
                            ),
                        });
                    }
                }
                Ok(config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(DefError::Io { path, source }),
        }
    }
}

/// DuckDB's buffer memory for a sync when ingestor.toml sets none. A load streams: what
/// DuckDB holds beyond this it writes out (to the vault, or to `<vault>.tmp`), so the
/// process stays under about 300 MB however large the input (BENCHMARKS.md). DuckDB's own
/// default, 80% of RAM, would let one large load take gigabytes for no gain in speed.
pub const DEFAULT_MEMORY_LIMIT: &str = "96MB";
