//! Ctrl-C and SIGTERM during a sync: it stops cleanly. The first signal sets a flag: the statement
//! in flight is interrupted (its unit rolls back), no further unit starts, and the run is
//! marked `interrupted` before the process exits with 130. A second signal ends the
//! process at once (a kill: the next sync marks the run and cleans up).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

/// Exit code of a run ended by a signal (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Catch SIGINT and SIGTERM from now on. Best effort: without handlers, a signal kills
/// the process as before, and the next sync cleans up.
pub fn install() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        // The second signal (the flag already set) ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal,
            EXIT_INTERRUPTED,
            STOP.clone(),
        );
        let _ = signal_hook::flag::register(signal, STOP.clone());
    }
}

/// Whether a signal asked this process to stop.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
