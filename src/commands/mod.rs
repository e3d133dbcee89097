//! One file per subcommand. Only these (and `run`) print.
//!
//! Results go to stdout through `out!`/`outln!`, which return the write's error rather
//! than panicking as `println!` does: a closed pipe (`ingestor sql … | head`) ends the
//! command quietly with exit 0 (`run` recognises the error).

/// `print!` to stdout that returns `std::io::Result<()>`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` to stdout that returns `std::io::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod check;
pub mod init;
pub mod inspect;
pub mod lake;
pub mod rebuild;
pub mod runs;
pub mod schema;
pub mod secret;
pub mod sql;
pub mod status;
pub mod sync;
