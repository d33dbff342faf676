//! The three ways to print a [`Plan`]: [`text`] for a terminal (coloured there),
//! [`markdown`] for a PR comment, [`json`] for bots. All three say the same things in the same
//! order: the risks, most dangerous first; the one-line summary; then each user's changes.

pub(crate) mod json;
pub(crate) mod markdown;
pub(crate) mod text;

use super::{Change, Plan, UserChange};

/// What the compiled tree was compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Baseline<'a> {
    /// `out/` in the work tree.
    Disk,
    /// `out/` at a git revision (`--base REF`).
    Revision(&'a str),
}

impl Baseline<'_> {
    /// "out/ on disk", "out/ at \`origin/main\`".
    pub(crate) fn describe(&self) -> String {
        match self {
            Baseline::Disk => "out/ on disk".into(),
            Baseline::Revision(rev) => format!("out/ at {}", super::risk::code(rev)),
        }
    }

    /// The command line that produced this report, for notes that send people to it.
    pub(crate) fn command(&self) -> String {
        match self {
            Baseline::Disk => "devbox-gen diff".into(),
            Baseline::Revision(rev) => format!("devbox-gen diff --base {}", rev.replace('`', "'")),
        }
    }
}

/// `alice: 1 changed`, `carol (new user): 7 added`, `bob (user removed): 7 removed`; the
/// delivery files of devbox.toml (`out/_gitops/`) are grouped under `devbox.toml`, which is not
/// a user (user names never hold a `.`).
pub(crate) fn user_heading(user: &UserChange) -> String {
    let is_user = !user.user.contains('.');
    let status = match (user.change, is_user) {
        (Change::Added, true) => " (new user)",
        (Change::Removed, true) => " (user removed)",
        (Change::Added, false) => " (new)",
        (Change::Removed, false) => " (removed)",
        (Change::Changed, _) => "",
    };
    let mut parts = Vec::new();
    for change in [Change::Added, Change::Removed, Change::Changed] {
        let n = user.resources.iter().filter(|r| r.change == change).count();
        if n > 0 {
            parts.push(format!("{n} {}", change.as_str()));
        }
    }
    format!("{}{status}: {}", user.user, parts.join(", "))
}

/// The summary line with what it was compared with.
pub(crate) fn summary_line(plan: &Plan, baseline: &Baseline) -> String {
    if plan.is_empty() {
        format!("No changes: users/ compiles to exactly {}.", baseline.describe())
    } else {
        format!("{} (compared with {}).", capitalise(&plan.summary()), baseline.describe())
    }
}

/// `Risks, most dangerous first (3):` or that there are none.
pub(crate) fn risks_heading(plan: &Plan) -> String {
    if plan.risks.is_empty() {
        "Risks: none (no home volume, access, availability or restart change).".into()
    } else {
        format!("Risks, most dangerous first ({}):", plan.risks.len())
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}
