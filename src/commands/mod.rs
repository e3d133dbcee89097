//! One file per subcommand. Only these (and `run`) print.

pub mod check;
pub mod init;
pub mod lake;
pub mod rebuild;
pub mod runs;
pub mod schema;
pub mod sql;
pub mod status;
pub mod sync;
