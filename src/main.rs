//! The `ingestor` binary: everything happens in `ingestor::run`.

fn main() {
    std::process::exit(ingestor::run::main());
}
