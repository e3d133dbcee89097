//! Command-line types (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Data Vault ELT loader: files and APIs into an embedded DuckDB vault.
#[derive(Debug, Parser)]
#[command(name = "ingestor", version, about, propagate_version = true)]
pub struct Cli {
    /// Project folder (holds ingestor.toml, tags/, sources/).
    #[arg(
        short = 'C',
        long = "dir",
        global = true,
        default_value = ".",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
    /// DuckDB vault file, overriding `database` in ingestor.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When another process holds the vault, wait up to this long for it (`30s`, `10m`)
    /// instead of failing at once.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_wait)]
    pub wait: Option<std::time::Duration>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a project: ingestor.toml, tags/, sources/, data/.
    #[command(after_help = "Examples:\n  ingestor init my-data\n  ingestor -C my-data check")]
    Init {
        /// Folder to create the project in (default: the project folder).
        #[arg(value_name = "DIR")]
        path: Option<PathBuf>,
    },
    /// Load new and changed inputs into the vault.
    #[command(
        after_help = "Examples:\n  ingestor sync\n  ingestor sync bank_giro --dry-run\n  ingestor sync --format json | jq '.exit_code'"
    )]
    Sync(SyncArgs),
    /// Check every source's inputs against its tags, without loading.
    #[command(
        after_help = "Examples:\n  ingestor check\n  ingestor check bank_giro --format json\n  ingestor check --format junit > report.xml"
    )]
    Check(CheckArgs),
    /// What the vault holds: sources, files, satellites, hubs.
    #[command(after_help = "Examples:\n  ingestor status\n  ingestor status --format json")]
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Recent runs and the inputs they loaded or failed on.
    #[command(after_help = "Examples:\n  ingestor runs --limit 5")]
    Runs {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Satellite versions of a source and their columns.
    #[command(after_help = "Examples:\n  ingestor schema bank_giro --diff")]
    Schema {
        /// Source name (default: all sources).
        source: Option<String>,
        /// Show what changed between consecutive versions.
        #[arg(long)]
        diff: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Replay the vault from the lake alone, and swap it in when every unit loaded.
    #[command(
        after_help = "Examples:\n  ingestor rebuild            # after editing tags/ or sources/\n  ingestor rebuild card       # one source; the others are kept"
    )]
    Rebuild(RebuildArgs),
    /// The lake of input files.
    #[command(after_help = "Examples:\n  ingestor lake verify\n  ingestor lake gc --dry-run")]
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
    /// What a reader extracts: a PDF's text lines with page, line, x and y.
    #[command(
        after_help = "With --source, each line is marked with what the source's `row`, `skip` and\n`continuation` make of it.\n\nExamples:\n  ingestor inspect data/statements/2026-03.pdf\n  ingestor inspect data/statements/2026-03.pdf --source giro_pdf"
    )]
    Inspect {
        /// The file.
        file: PathBuf,
        /// A PDF source whose rules to show against the lines.
        #[arg(long)]
        source: Option<String>,
    },
    /// Secrets that definitions name, kept in the OS keyring.
    #[command(
        after_help = "Values come from INGESTOR_SECRET_<NAME> first, then the OS keyring.\n\nExamples:\n  ingestor secret set bank_token            # asks for the value, without echo\n  printf %s \"$TOKEN\" | ingestor secret set bank_token\n  ingestor secret list"
    )]
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Run SQL against the vault.
    #[command(
        after_help = "Examples:\n  ingestor sql \"SELECT date_trunc('month', date) AS m, sum(amount) FROM transactions GROUP BY ALL ORDER BY m\"\n  ingestor sql - --format csv < report.sql"
    )]
    Sql {
        /// The query; `-` reads it from stdin.
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
    },
}

/// `ingestor sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Sources to sync (default: all).
    pub sources: Vec<String>,
    /// Load inputs even if this source already loaded the same bytes.
    #[arg(long)]
    pub force: bool,
    /// Show what would be loaded, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON summary on stdout (the same as `--format json`).
    #[arg(long)]
    pub json: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
}

/// Output formats of `sync`, `status`, `runs` and `schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Lines and tables for people.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// `ingestor rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Sources to rebuild (default: all); the others are kept as they are.
    pub sources: Vec<String>,
}

/// `ingestor lake …`.
#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Remove objects no committed load refers to (a failed API sync's bodies, a refused
    /// file's copy); the vault is held meanwhile, so no sync runs.
    Gc {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every lake object against its name and the manifest.
    Verify,
}

/// `ingestor secret …`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret in the OS keyring: read without echo from a terminal, or from stdin.
    Set {
        /// The secret's name, as definitions use it.
        name: String,
    },
    /// Whether a secret is set and where; its value only with --show.
    Get {
        name: String,
        /// Print the value itself.
        #[arg(long)]
        show: bool,
    },
    /// Make a random 256-bit key (for `[hash] key_secret`) and store it in the OS keyring.
    Generate {
        name: String,
        /// Print the key on stdout instead of storing it (for a server without a keyring:
        /// put it in INGESTOR_SECRET_<NAME>, and keep a copy).
        #[arg(long)]
        print: bool,
    },
    /// Remove a secret from the OS keyring.
    Rm { name: String },
    /// Secret names: those in the keyring and those the project's definitions use.
    List,
}

/// `ingestor check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Sources to check (default: all).
    pub sources: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
    pub format: CheckFormat,
}

/// Output formats of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    /// JUnit XML: a test suite per source, a test case per input (CI test reports).
    Junit,
    Github,
}

/// Output formats of `sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

/// `--wait`: a duration such as `30s`, `500ms`, `10m`.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    crate::readers::api::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as `30s` or `10m`"))
}
