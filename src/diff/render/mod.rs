//! The three ways to print a [`Plan`]: [`text`] for a terminal (coloured there),
//! [`markdown`] for a PR comment, [`json`] for bots. All three say the same things in the same
//! order: the risks, most dangerous first; the fields that change; the change in cost (or in
//! resources); the one-line summary; then each user's changes.

pub(crate) mod json;
pub(crate) mod markdown;
pub(crate) mod text;

use std::collections::HashMap;

use super::cost::{Amount, Report};
use super::{Change, FieldChange, Plan, Risk, UserChange};

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

/// When the branch's `out/` is not what users/ compiles to: said before anything else, since
/// the report shows what users/ compiles to and the cluster gets what is committed.
pub(crate) fn behind_note(plan: &Plan) -> Option<String> {
    const SHOWN: usize = 5;
    let count = plan.out_behind.len();
    if count == 0 {
        return None;
    }
    let mut files: Vec<String> = plan.out_behind.iter().take(SHOWN).map(|path| super::risk::code(&format!("out/{path}"))).collect();
    if count > SHOWN {
        files.push(format!("and {} more", count - SHOWN));
    }
    Some(format!(
        "out/ in this branch is not what users/ compiles to ({}: {}): this report shows what users/ compiles to, but Argo CD and Flux apply the committed out/. Run `devbox-gen build` and commit out/.",
        if count == 1 { "1 file differs".to_string() } else { format!("{count} files differ") },
        files.join(", ")
    ))
}

/// The summary line with what it was compared with.
pub(crate) fn summary_line(plan: &Plan, baseline: &Baseline) -> String {
    if plan.is_empty() {
        format!("No changes: users/ compiles to exactly {}.", baseline.describe())
    } else {
        format!("{} (compared with {}).", capitalise(&plan.summary()), baseline.describe())
    }
}

/// Risks that say exactly the same thing for several boxes (a `[defaults] image` bump, a
/// template change), to be told once with the list of their users.
#[derive(Debug)]
pub(crate) struct RiskGroup<'a> {
    /// The first of them; the others differ only in whose box and which object.
    pub risk: &'a Risk,
    /// In the order of the plan's risks (by user).
    pub users: Vec<&'a str>,
}

impl RiskGroup<'_> {
    /// `alice`, or `3 users`.
    pub(crate) fn who(&self) -> String {
        match self.users[..] {
            [one] => one.to_string(),
            // Hand-written files of out/ are grouped by path (`out/evil/crb.yaml`).
            _ if self.users.iter().all(|user| crate::diff::is_hand_written_group(user)) => {
                crate::diff::plural(self.users.len(), "file", "files")
            }
            _ => crate::diff::plural(self.users.len(), "user", "users"),
        }
    }

    /// The first `shown` users, then how many more: `alice, bob and 4998 more`.
    pub(crate) fn user_list(&self, shown: usize) -> String {
        let listed = self.users.iter().take(shown).copied().collect::<Vec<_>>().join(", ");
        match self.users.len().saturating_sub(shown) {
            0 => listed,
            more => format!("{listed} and {more} more"),
        }
    }
}

/// The plan's risks, grouped where they say the same thing, in the plan's order (most
/// dangerous first). Every risk is in exactly one group; JSON keeps them one by one.
pub(crate) fn group_risks(plan: &Plan) -> Vec<RiskGroup<'_>> {
    let mut groups: Vec<RiskGroup<'_>> = Vec::new();
    // Everything a reader sees of a risk: kind, summary, details and help.
    type Said<'a> = (&'a str, &'a str, &'a [String], &'a [String]);
    let mut index: HashMap<Said<'_>, usize> = HashMap::new();
    for risk in &plan.risks {
        let key = (risk.kind.as_str(), risk.summary.as_str(), risk.details.as_slice(), risk.help.as_slice());
        match index.get(&key) {
            Some(&i) => groups[i].users.push(&risk.user),
            None => {
                index.insert(key, groups.len());
                groups.push(RiskGroup { risk, users: vec![&risk.user] });
            }
        }
    }
    groups
}

/// `Risks, most dangerous first (3):`, `(5001, told as 2)` when some say the same thing for
/// several boxes, or that there are none.
pub(crate) fn risks_heading(plan: &Plan, groups: &[RiskGroup<'_>]) -> String {
    if plan.risks.is_empty() {
        "Risks: none (no home volume, access, availability or restart change).".into()
    } else if groups.len() == plan.risks.len() {
        format!("Risks, most dangerous first ({}):", plan.risks.len())
    } else {
        format!("Risks, most dangerous first ({}, told as {}):", plan.risks.len(), groups.len())
    }
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// The fields to list under "What changes, by field", when the change touches several users
/// (for one user, the diff's hunk headers already name them); empty otherwise.
pub(crate) fn fleet_fields(plan: &Plan) -> &[FieldChange] {
    let users: std::collections::BTreeSet<&String> = plan.fields.iter().flat_map(|f| &f.users).collect();
    if users.len() > 1 { &plan.fields } else { &[] }
}

/// `What changes, by field (3):`.
pub(crate) fn fields_heading(fields: &[FieldChange]) -> String {
    format!("What changes, by field ({}):", fields.len())
}

/// `StatefulSet spec.template.spec.containers[devbox].image: 3 users (alice, bob, carol)`.
pub(crate) fn field_line(field: &FieldChange, shown: usize) -> String {
    let listed = field.users.iter().take(shown).map(String::as_str).collect::<Vec<_>>().join(", ");
    let who = match field.users.len() {
        1 => listed,
        n if n > shown => format!("{n} users ({listed} and {} more)", n - shown),
        n => format!("{n} users ({listed})"),
    };
    format!("{} {}: {who}", field.kind, field.path)
}

/// Boxes whose bill changes in the same way (a `[defaults]` change), to be told once.
#[derive(Debug)]
pub(crate) struct CostGroup<'a> {
    /// `new, running: +8 CPU, +100 GiB disk`.
    pub what: String,
    /// A month, per box; `None` without prices or when the price is unknown.
    pub delta: Option<Amount>,
    /// The same if the boxes run only in their working hours; `None` when that is no different.
    pub in_working_hours: Option<Amount>,
    /// GPU types without a price that leave the amount unknown.
    pub unpriced: &'a std::collections::BTreeSet<String>,
    /// By user name.
    pub users: Vec<&'a str>,
}

impl CostGroup<'_> {
    /// `alice`, or `3 users`.
    pub(crate) fn label(&self) -> String {
        match self.users[..] {
            [one] => one.to_string(),
            _ => crate::diff::plural(self.users.len(), "user", "users"),
        }
    }

    /// `+$520.10`, `+$92.25 each`, `price unknown: no `gpu_hour` for `x``; `None` without
    /// prices.
    pub(crate) fn amount(&self, report: &Report<'_>) -> Option<String> {
        let each = if self.users.len() > 1 { " each" } else { "" };
        match self.delta {
            Some(delta) => Some(match self.in_working_hours {
                Some(least) => format!("{}{each} ({}{each} in working hours only)", report.money(delta), report.money(least)),
                None => format!("{}{each}", report.money(delta)),
            }),
            None if !self.unpriced.is_empty() => {
                let kinds: Vec<String> = self.unpriced.iter().map(|k| super::risk::code(k)).collect();
                Some(format!("price unknown: no `gpu_hour` for {}", kinds.join(", ")))
            }
            None => None,
        }
    }

    /// `alice +$520.10`, `3 users +$92.25 each`, `carol (price unknown: ...)`, `alice`.
    pub(crate) fn who(&self, report: &Report<'_>) -> String {
        match (self.amount(report), self.delta) {
            (Some(amount), Some(_)) => format!("{} {amount}", self.label()),
            (Some(unknown), None) => format!("{} ({unknown})", self.label()),
            (None, _) => self.label(),
        }
    }

    /// The first `shown` users, then how many more.
    pub(crate) fn user_list(&self, shown: usize) -> String {
        let listed = self.users.iter().take(shown).copied().collect::<Vec<_>>().join(", ");
        match self.users.len().saturating_sub(shown) {
            0 => listed,
            more => format!("{listed} and {more} more"),
        }
    }
}

/// The report's boxes, grouped where they change the same way and cost the same: the largest
/// change first when priced (unknown prices last), by user otherwise.
pub(crate) fn group_costs<'a>(report: &'a Report<'_>) -> Vec<CostGroup<'a>> {
    let mut groups: Vec<CostGroup<'a>> = Vec::new();
    // What a group's boxes share: what happens, the change, the change in working hours only,
    // the GPU types without a price.
    type Key<'k> = (String, Option<Amount>, Option<Amount>, &'k std::collections::BTreeSet<String>);
    let mut index: HashMap<Key<'a>, usize> = HashMap::new();
    for item in &report.items {
        let in_working_hours = item.delta_in_working_hours().filter(|least| Some(*least) != item.delta());
        let key = (item.cost.what(), item.delta(), in_working_hours, &item.unpriced);
        match index.get(&key) {
            Some(&i) => groups[i].users.push(&item.cost.user),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(CostGroup {
                    what: key.0,
                    delta: key.1,
                    in_working_hours: key.2,
                    unpriced: key.3,
                    users: vec![&item.cost.user],
                });
            }
        }
    }
    if report.prices.is_some() {
        let weight = |g: &CostGroup<'_>| g.delta.map(|d| d.magnitude().saturating_mul(g.users.len() as u128));
        // Unknown prices last; a stable sort keeps user order among equals.
        groups.sort_by_key(|g| (g.delta.is_none(), std::cmp::Reverse(weight(g))));
    }
    groups
}

/// The cost section's heading, in two parts for the renderers to style: the total, and what
/// it covers. `None` when no box's bill or resources change.
pub(crate) fn cost_heading(report: &Report<'_>) -> Option<(String, String)> {
    if report.is_empty() {
        return None;
    }
    let mut boxes = crate::diff::plural(report.items.len(), "box changes", "boxes change");
    let always_on = report.items.iter().filter(|i| i.cost.priced_as_always_on()).count();
    if always_on > 0 {
        // A rule, not a count: the box may stop by itself on one side of the change only.
        let priced = if report.prices.is_some() { "priced" } else { "counted" };
        boxes = format!("{boxes}; a box that stops by itself is {priced} as always on");
    }
    match report.prices {
        Some(_) => {
            let (before, after) = report.totals();
            let unknown = report.unpriced().len();
            let mut total = format!("Cost: {}/month", report.money(after - before));
            if let Some((least_before, least_after)) = report.totals_in_working_hours().filter(|least| *least != (before, after)) {
                total = format!("{total}, {} in working hours only", report.money(least_after - least_before));
            }
            Some(match unknown {
                0 => (total, boxes),
                _ if unknown == report.items.len() => ("Cost: unknown".into(), format!("{boxes}: no price for a GPU type")),
                _ => (total, format!("{boxes}; not counting {unknown} without a price")),
            })
        }
        None => Some((
            format!("Resource change: {}", report.resource_change()),
            format!("{boxes}; devbox.toml has no `[prices]` to state the cost"),
        )),
    }
}
