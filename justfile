# Tasks for ingestor. Every recipe uses the release profile: the bundled DuckDB is compiled
# once, and tests run against the same build as the binary.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build the binary.
build:
    cargo build --release

# Run every test (unit, integration, golden vectors).
test:
    cargo test --release

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --all-targets -- -D warnings

# Load the shipped samples and show the result.
demo:
    cargo run --release -- sync
    cargo run --release -- sql "SELECT record_source, count(*) AS rows, sum(amount) AS total FROM transactions GROUP BY ALL ORDER BY 1"

# Benchmark against DuckDB's own SQL (not in CI); e.g. `just bench --rows 5000000`.
bench *ARGS="--rows 1000000":
    cargo bench --bench sync -- {{ARGS}}

# The kill harness at 24 points over a sync (CI runs 6).
kill-test:
    INGESTOR_KILL_POINTS=24 cargo test --release --test it -- kill:: --nocapture

# What CI runs: lints, then tests.
ci: lint test
