//! Parse arguments, run the command, map the outcome to an exit code.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::{exit_code, EXIT_DEFINITION, EXIT_OK};

/// Run the binary; returns the process exit code.
pub fn main() -> i32 {
    // A reader's panic is caught and reported as its unit's error; the default hook
    // would print a backtrace for it as well.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !crate::readers::in_guarded_reader() {
            default_hook(info);
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                EXIT_DEFINITION
            } else {
                EXIT_OK
            };
        }
    };
    if let Some(wait) = cli.wait {
        crate::db::set_lock_wait(wait);
    }
    match dispatch(&cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return EXIT_OK;
            }
            eprintln!("error: {err:#}");
            exit_code(&err)
        }
    }
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Init { path } => commands::init::run(cli, path.as_deref()),
        Command::Sync(args) => commands::sync::run(cli, args),
        Command::Check(args) => commands::check::run(cli, args),
        Command::Status { format } => commands::status::run(cli, *format),
        Command::Runs { limit, format } => commands::runs::run(cli, *limit, *format),
        Command::Schema {
            source,
            diff,
            format,
        } => commands::schema::run(cli, source.as_deref(), *diff, *format),
        Command::Sql { query, format } => commands::sql::run(cli, query, *format),
        Command::Rebuild(args) => commands::rebuild::run(cli, args),
        Command::Lake { command } => commands::lake::run(cli, command),
        Command::Secret { command } => commands::secret::run(cli, command),
        Command::Inspect { file, source } => commands::inspect::run(cli, file, source.as_deref()),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
