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
pub struct Progress {
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(message: &str, enabled: bool) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
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
    fn off_the_terminal_it_starts_no_thread() {
        // Tests run with stderr captured, not on a terminal.
        let progress = Progress::start("compiling", true);
        assert!(progress.thread.is_none());
        let disabled = Progress::start("compiling", false);
        assert!(disabled.thread.is_none());
    }
}
