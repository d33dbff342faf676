//! A progress line for runs that take longer than a moment (thousands of users): shown on a
//! terminal only, only after a short delay, and erased when the work is done, so quick runs,
//! pipes and CI logs never see it.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a run may take before it gets a progress line.
const DELAY: Duration = Duration::from_millis(400);

/// Shows `message` on stderr after [`DELAY`] until dropped.
pub(crate) struct Progress {
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(message: &str, enabled: bool) -> Self {
        Self::start_on(message, enabled, std::io::stderr().is_terminal())
    }

    /// [`Progress::start`] with whether stderr is a terminal given, so tests need not be on one.
    fn start_on(message: &str, enabled: bool, terminal: bool) -> Self {
        if !enabled || !terminal {
            return Self { done: None, thread: None };
        }
        let (done, finished) = mpsc::channel::<()>();
        let message = message.to_string();
        let thread = thread::spawn(move || {
            if finished.recv_timeout(DELAY) != Err(RecvTimeoutError::Timeout) {
                return; // finished (or dropped) before anyone had to wait
            }
            let mut stderr = std::io::stderr();
            let _ = write!(stderr, "{message}…");
            let _ = stderr.flush();
            let _ = finished.recv();
            let _ = write!(stderr, "\r\x1b[K"); // erase the line: the summary follows
            let _ = stderr.flush();
        });
        Self { done: Some(done), thread: Some(thread) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_shown_only_when_enabled_and_on_a_terminal() {
        for (enabled, terminal) in [(true, false), (false, true), (false, false)] {
            let progress = Progress::start_on("compiling", enabled, terminal);
            assert!(progress.thread.is_none() && progress.done.is_none(), "enabled {enabled}, terminal {terminal}");
        }
        let shown = Progress::start_on("compiling", true, true);
        assert!(shown.thread.is_some() && shown.done.is_some());
        drop(shown); // done before the delay: dropping ends and joins the thread, which never writes
    }

    #[test]
    fn disabled_it_starts_no_thread_wherever_stderr_is() {
        assert!(Progress::start("compiling", false).thread.is_none());
    }
}
