//! A build that ends early leaves nothing of its own behind. Ctrl-C (SIGINT), a cancelled CI
//! job (SIGTERM: GitHub Actions and GitLab send it before killing the job) or a closed
//! terminal (SIGHUP) would otherwise end the process between writing a temporary file and
//! renaming it: `.PID-N.devbox-gen-tmp` files in `out/`, which `build --check` refuses until
//! the next build, or a staging directory beside `out/`. The render watchdog, which ends a
//! runaway template, needs the same.
//!
//! Writers mark what they are doing: each short write ([`writing`]: one bundle into the staging
//! directory, one temporary file, all the renames of an in-place update, the swap of a new
//! `out/`) and each path that is temporary until the build finishes ([`temporary`]). Ending
//! early ([`abandon`]) stops new writes, waits for those under way, so that no file is cut
//! short and `out/` is either as it was or as the renames left it, and removes what is still
//! temporary.
//!
//! The signal is taken on a thread of its own (signal-hook's iterator), where removing files
//! is allowed, which it is not in a signal handler. After cleaning up, the process ends by the
//! same signal, so the shell or the CI runner sees an interrupted build, not a failed one. A
//! second signal ends it at once.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// How long [`abandon`] waits for the writes under way. Each takes milliseconds; past this, the
/// filesystem is stuck, and what is temporary is removed anyway.
const PATIENCE: Duration = Duration::from_secs(5);

/// Set once the build is ending early: no new write starts.
static ABANDONED: AtomicBool = AtomicBool::new(false);
/// Writes under way. With [`ABANDONED`], two atomics rather than a lock: a build of 10,000
/// boxes marks 100,000 writes. Each side changes its own and then reads the other's
/// (sequentially consistent), so a write either sees the build abandoned and does not start,
/// or is counted and waited for.
static WRITING: AtomicUsize = AtomicUsize::new(0);
/// Files and directories to remove if the build ends early.
static TEMPORARY: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn temporaries() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    TEMPORARY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes SIGINT, SIGTERM and SIGHUP for the rest of the process: each abandons the build and
/// ends the process by that signal. Once per process; if the handlers cannot be set, signals
/// keep their default action, as before.
pub(crate) fn clean_up_on_signals() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let signals = [SIGINT, SIGTERM, SIGHUP];
        // A second signal, while the first is being handled, takes the default action at once.
        let handling = Arc::new(AtomicBool::new(false));
        for signal in signals {
            let _ = signal_hook::flag::register_conditional_default(signal, Arc::clone(&handling));
            let _ = signal_hook::flag::register(signal, Arc::clone(&handling));
        }
        let Ok(mut received) = signal_hook::iterator::Signals::new(signals) else { return };
        let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
            if let Some(signal) = received.forever().next() {
                abandon();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
    });
}

/// A write under way, until dropped.
pub(crate) struct Writing(());

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks a short write as under way. Once the build is abandoned, no write starts: the thread
/// waits here until the process ends.
pub(crate) fn writing() -> Writing {
    WRITING.fetch_add(1, Ordering::SeqCst);
    if ABANDONED.load(Ordering::SeqCst) {
        WRITING.fetch_sub(1, Ordering::SeqCst);
        loop {
            std::thread::park();
        }
    }
    Writing(())
}

/// Files or directories removed if the build ends early, until dropped: then they are the
/// owner's, renamed into place or removed by it.
#[derive(Debug)]
pub(crate) struct Temporary(Vec<PathBuf>);

impl Drop for Temporary {
    fn drop(&mut self) {
        let mut temporary = temporaries();
        for path in &self.0 {
            temporary.remove(path);
        }
    }
}

pub(crate) fn temporary(paths: Vec<PathBuf>) -> Temporary {
    temporaries().extend(paths.iter().cloned());
    Temporary(paths)
}

/// Ends the build early: no write starts, those under way finish (for at most [`PATIENCE`]),
/// and what is still temporary is removed. The caller then ends the process.
pub(crate) fn abandon() {
    ABANDONED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + PATIENCE;
    while WRITING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    for path in std::mem::take(&mut *temporaries()) {
        match path.symlink_metadata() {
            Ok(metadata) if metadata.is_dir() => {
                let _ = std::fs::remove_dir_all(&path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => {}
        }
    }
}
