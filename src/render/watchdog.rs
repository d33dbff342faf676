//! jrsonnet cannot interrupt an evaluation: a template that loops without end would hang the
//! build, and CI with it, until the job's own timeout; one that doubles a string forty times
//! fills the machine's memory until the kernel kills the process, or the runner. A thread
//! watches every box being rendered and ends the process, with exit 2 and an error naming the
//! user file, when one has run longer than `DEVBOX_GEN_RENDER_TIMEOUT` seconds (60 by default;
//! a box renders in about a millisecond), or when the process holds more than
//! `DEVBOX_GEN_RENDER_MEMORY` MiB (4096 by default; a build of 10,000 boxes peaks near 230)
//! while a box has been rendering for a second. `out/` is not touched before the compile ends;
//! the staging directory of a new one is removed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::diagnostic::{Diagnostic, Diagnostics};

/// The boxes being rendered, by thread: when each started, and its user file.
static RENDERING: Mutex<Option<HashMap<ThreadId, (Instant, String)>>> = Mutex::new(None);
static STARTED: OnceLock<()> = OnceLock::new();

/// How often the watchdog looks.
const PERIOD: Duration = Duration::from_millis(200);
/// How long a box renders before the memory limit applies: a build holds what it has rendered
/// so far, a single box only as much as its template makes.
const RUNAWAY: Duration = Duration::from_secs(1);

/// Watches the rendering of one box until dropped.
pub(super) struct Watched(());

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(mut rendering) = RENDERING.lock()
            && let Some(rendering) = rendering.as_mut()
        {
            rendering.remove(&std::thread::current().id());
        }
    }
}

/// Starts watching the box of `source` (its user file) on this thread.
pub(super) fn watch(source: &str) -> Watched {
    STARTED.get_or_init(|| {
        let limits = Limits::from_env();
        let _ = std::thread::Builder::new().name("render-watchdog".into()).spawn(move || patrol(limits));
    });
    if let Ok(mut rendering) = RENDERING.lock() {
        rendering.get_or_insert_with(HashMap::new).insert(std::thread::current().id(), (Instant::now(), source.to_string()));
    }
    Watched(())
}

#[derive(Clone, Copy)]
struct Limits {
    time: Duration,
    memory_bytes: u64,
}

impl Limits {
    fn from_env() -> Self {
        let number = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default);
        Self {
            time: Duration::from_secs(number("DEVBOX_GEN_RENDER_TIMEOUT", 60).max(1)),
            memory_bytes: number("DEVBOX_GEN_RENDER_MEMORY", 4096).max(64).saturating_mul(1024 * 1024),
        }
    }
}

fn patrol(limits: Limits) {
    loop {
        std::thread::sleep(PERIOD);
        let longest = RENDERING.lock().ok().and_then(|rendering| {
            rendering
                .as_ref()?
                .values()
                .max_by_key(|(started, _)| started.elapsed())
                .map(|(started, source)| (started.elapsed(), source.clone()))
        });
        let Some((running, source)) = longest else { continue };
        let problem = if running >= limits.time {
            Some(
                Diagnostic::error(format!("the template has been evaluating the box of {source} for {} s without finishing", running.as_secs()))
                    .help("it may call itself without end, or loop over a very long range: jrsonnet cannot interrupt an evaluation, so devbox-gen stops here")
                    .help(format!("a box usually renders in about a millisecond; if the template really needs longer, set DEVBOX_GEN_RENDER_TIMEOUT (seconds, now {})", limits.time.as_secs())),
            )
        } else if running >= RUNAWAY && resident_bytes().is_some_and(|bytes| bytes > limits.memory_bytes) {
            Some(
                Diagnostic::error(format!(
                    "the template made devbox-gen hold more than {} MiB while evaluating the box of {source}",
                    limits.memory_bytes / (1024 * 1024)
                ))
                .help("it may build a value that grows without end (a string or an array doubled again and again); devbox-gen stops before the machine runs out of memory")
                .help("if the template really needs more, set DEVBOX_GEN_RENDER_MEMORY (MiB)"),
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            give_up(problem.in_path(source));
        }
    }
}

/// Reports, abandons the build (which removes the staging directory of a new `out/`), and
/// ends the process: nothing else can stop the evaluation.
fn give_up(problem: Diagnostic) -> ! {
    crate::interrupt::abandon();
    crate::stdio::to_stderr(&crate::render_plain(&Diagnostics::from(problem)));
    crate::stdio::status_line(format_args!("error: nothing under out/ was changed"));
    std::process::exit(2);
}

/// The process's resident memory, from /proc (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}
