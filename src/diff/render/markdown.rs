//! The PR comment: the risks first, then the summary, then one collapsed `<details>` section
//! per user with a fenced `diff` block per resource, so a reviewer reads the risks and opens
//! only what they need.
//!
//! GitHub refuses comments over 65,536 characters. The report stays under [`BUDGET`]: the
//! risks and the summary always fit (a huge list of risks is cut with a count), diffs are added
//! while they fit, and a note says what was left out and how to see it.

use super::{
    Baseline, RiskGroup, behind_note, capitalise, cost_heading, field_line, fields_heading, fleet_fields, group_costs, group_risks,
    risks_heading, summary_line, user_heading,
};
use crate::diff::risk::Level;
use crate::diff::{Change, Plan, ResourceChange};
use crate::text::printable;

/// GitHub's limit on the body of an issue or PR comment, in characters.
#[cfg(test)]
const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// What the report may use of that (in bytes, which are never fewer than characters), leaving
/// room for whatever a CI step adds around it.
pub(crate) const BUDGET: usize = 60_000;

/// Kept free for the closing note.
const RESERVE: usize = 1_000;

/// The first line: a hidden marker a CI step can find to update its previous comment.
pub(crate) const MARKER: &str = "<!-- devbox-gen diff -->";

pub(crate) fn render(plan: &Plan, baseline: &Baseline) -> String {
    render_within(plan, baseline, BUDGET)
}

/// [`render`] with another size budget (bytes).
pub(crate) fn render_within(plan: &Plan, baseline: &Baseline, budget: usize) -> String {
    let mut out = format!("{MARKER}\n### devbox-gen diff\n\n");
    if let Some(note) = behind_note(plan) {
        out.push_str(&format!("> [!WARNING]\n> {}\n\n", inline(&note)));
    }
    for note in &plan.notes {
        out.push_str(&format!("> [!WARNING]\n> {}\n", inline(&capitalise(&note.message))));
        for help in &note.help {
            out.push_str(&format!(">\n> {}\n", inline(&capitalise(help))));
        }
        out.push('\n');
    }
    if plan.is_empty() {
        out.push_str(&inline(&summary_line(plan, baseline)));
        out.push('\n');
        return out;
    }
    let groups = group_risks(plan);
    out.push_str(&format!("**{}**\n\n", inline(&risks_heading(plan, &groups))));
    let risks_complete = risk_list(&groups, baseline, budget, &mut out);
    if !plan.risks.is_empty() {
        out.push('\n');
    }
    let fields = fleet_fields(plan);
    if !fields.is_empty() {
        out.push_str(&format!("<details><summary><b>{}</b></summary>\n\n", html(&fields_heading(fields))));
        for (i, field) in fields.iter().enumerate() {
            let line = format!("- {}\n", inline(&bounded(&field_line(field, USERS_SHOWN), MAX_LINE)));
            if out.len() + line.len() + RESERVE > budget / 2 {
                out.push_str(&format!("- … and {} more: run `{}` to see them all\n", fields.len() - i, baseline.command()));
                break;
            }
            out.push_str(&line);
        }
        out.push_str("\n</details>\n\n");
    }
    cost_table(plan, baseline, budget, &mut out);
    out.push_str(&format!("**{}**\n\n", inline(&summary_line(plan, baseline))));

    let total: usize = plan.users.iter().map(|u| u.resources.len()).sum();
    let mut shown = 0;
    let mut cut = false;
    let close = "</details>\n\n";
    'users: for user in &plan.users {
        let open = format!("<details><summary><b>{}</b></summary>\n\n", html(&bounded(&user_heading(user), MAX_LINE)));
        if out.len() + open.len() + close.len() + RESERVE > budget {
            cut = true;
            break;
        }
        out.push_str(&open);
        for resource in &user.resources {
            let block = resource_block(resource, None);
            if out.len() + block.len() + close.len() + RESERVE <= budget {
                out.push_str(&block);
                shown += 1;
                continue;
            }
            let room = budget.saturating_sub(out.len() + close.len() + RESERVE);
            out.push_str(&resource_block(resource, Some(room)));
            out.push_str(close);
            cut = true;
            break 'users;
        }
        out.push_str(close);
    }
    if cut {
        out.push_str(&format!(
            "> [!NOTE]\n> The diff is cut here to stay under GitHub's limit of 65,536 characters per comment: {} of {total} resource diffs are not shown in full. {} Run `{}` to see everything.\n",
            total - shown,
            if risks_complete { "The risks above are complete." } else { "Some risks above are counted, not listed." },
            baseline.command()
        ));
    }
    if out.len() > budget {
        return too_big(plan, baseline);
    }
    out
}

/// How many users a grouped risk lists in a PR comment (inside a collapsed `<details>`).
const USERS_SHOWN: usize = 200;

/// The cost section: its heading, then a table with a row per box, or per group of boxes that
/// change alike. Like the lists above it, it stops at half the budget, with a count; but it
/// always has an eighth of the budget of its own, so risks that took half of it (500 boxes
/// removed at once) still leave the table its first rows.
fn cost_table(plan: &Plan, baseline: &Baseline, budget: usize, out: &mut String) {
    let limit = (budget / 2).max(out.len() + budget / 8);
    let report = plan.cost();
    let Some((total, covers)) = cost_heading(&report) else { return };
    out.push_str(&format!("**{}** ({})\n\n", inline(&total), inline(&covers)));
    let priced = report.prices.is_some();
    out.push_str(if priced { "| box | per month | what changes |\n|---|---:|---|\n" } else { "| box | what changes |\n|---|---|\n" });
    let groups = group_costs(&report);
    for (i, group) in groups.iter().enumerate() {
        let who = match group.users.len() {
            1 => group.label(),
            _ => format!("{}: {}", group.label(), group.user_list(USERS_SHOWN)),
        };
        let row = match group.amount(&report) {
            Some(amount) => format!("| {} | {} | {} |\n", cell(&who), cell(&amount), cell(&group.what)),
            None if priced => format!("| {} | | {} |\n", cell(&who), cell(&group.what)),
            None => format!("| {} | {} |\n", cell(&who), cell(&group.what)),
        };
        if out.len() + row.len() + RESERVE > limit {
            let note = format!("… and {} more: run `{}` to see them all", groups.len() - i, baseline.command());
            out.push_str(&if priced { format!("| {note} | | |\n") } else { format!("| {note} | |\n") });
            break;
        }
        out.push_str(&row);
    }
    out.push('\n');
}

/// The risks, most dangerous first, in what the comment can give them: each in full while the
/// first half of the budget lasts, then by its one line while three quarters do (the resource
/// diffs below them matter less), then a count by level, so that a box stopped or put on Spot
/// among hundreds of new keys is never left out without a word. Whether every one is listed.
fn risk_list(groups: &[RiskGroup<'_>], baseline: &Baseline, budget: usize, out: &mut String) -> bool {
    let mut in_full = true;
    // Those without room: the shorter ones after one that did not fit are still tried.
    let mut untold: Vec<&RiskGroup<'_>> = Vec::new();
    for group in groups {
        if in_full {
            let item = risk_item(group);
            if out.len() + item.len() + RESERVE <= budget / 2 {
                out.push_str(&item);
                continue;
            }
            in_full = false;
        }
        let line = risk_headline(group);
        if out.len() + line.len() + RESERVE <= budget * 3 / 4 {
            out.push_str(&line);
        } else {
            untold.push(group);
        }
    }
    if untold.is_empty() {
        return true;
    }
    let (count, by_level) = counted(&untold);
    out.push_str(&format!("- … and {count} more ({by_level}): run `{}` to see them all\n", baseline.command()));
    false
}

/// How many risks `groups` hold, and by level: `3 🛑 DATA, 1 🔑 ACCESS`.
fn counted(groups: &[&RiskGroup<'_>]) -> (usize, String) {
    let by_level: Vec<String> = [Level::Data, Level::Sync, Level::Access, Level::Downtime, Level::Restart]
        .into_iter()
        .filter_map(|level| {
            let count: usize = groups.iter().filter(|group| group.risk.level() == level).map(|group| group.users.len()).sum();
            (count > 0).then(|| format!("{count} {}", label(level)))
        })
        .collect();
    (groups.iter().map(|group| group.users.len()).sum(), by_level.join(", "))
}

/// What is posted when the report, for all its cutting, would still not fit: the risks counted
/// by level. GitHub refuses a comment over its limit, and the CI step would leave the previous
/// report up, however harmless it was.
fn too_big(plan: &Plan, baseline: &Baseline) -> String {
    let groups = group_risks(plan);
    let all: Vec<&RiskGroup<'_>> = groups.iter().collect();
    let (count, by_level) = counted(&all);
    let risks = if count == 0 { "No risks.".to_string() } else { format!("{count} risks: {by_level}.") };
    format!(
        "{MARKER}\n### devbox-gen diff\n\n> [!WARNING]\n> This report is too long for a comment, even cut. {risks} Run `{}` to see them.\n",
        baseline.command()
    )
}

fn label(level: Level) -> &'static str {
    match level {
        Level::Data => "🛑 DATA",
        Level::Sync => "🛑 SYNC",
        Level::Access => "🔑 ACCESS",
        Level::Downtime => "⚠️ DOWNTIME",
        Level::Restart => "🔄 RESTART",
    }
}

/// A risk by its one line, for when the comment has no room for its details.
fn risk_headline(group: &RiskGroup<'_>) -> String {
    let (who, summary) = (group.who(), &group.risk.summary);
    format!("- **{}** **{}**: {}\n", label(group.risk.level()), inline(&bounded(&who, MAX_LINE)), inline(&bounded(summary, MAX_LINE)))
}

fn risk_item(group: &RiskGroup<'_>) -> String {
    let risk = group.risk;
    let mut item = risk_headline(group);
    if group.users.len() > 1 {
        item.push_str(&format!(
            "  - <details><summary>the {}</summary>{}</details>\n",
            html(&bounded(&group.who(), MAX_LINE)),
            html(&bounded(&group.user_list(USERS_SHOWN), MAX_LINE * 4))
        ));
    }
    for detail in &risk.details {
        item.push_str(&format!("  - {}\n", inline(&bounded(detail, MAX_LINE))));
    }
    for help in &risk.help {
        item.push_str(&format!("  - **help:** {}\n", inline(&bounded(help, MAX_LINE))));
    }
    item
}

/// One resource's heading and fenced diff; with `room`, only as many lines as fit in it. A
/// removed resource is one line: its contents are in the base already, and the comment's room
/// is better spent on what is new.
fn resource_block(resource: &ResourceChange, room: Option<usize>) -> String {
    let code = |text: &str| inline(&crate::diff::risk::code(&bounded(text, MAX_LINE)));
    // With no room for even its one line, nothing: the note after the diffs says what is cut.
    let within = |line: String| if room.is_some_and(|room| line.len() > room) { String::new() } else { line };
    if let Some((from, to)) = resource.moved_only() {
        return within(format!("**moved** {} ({} → {})\n\n", code(&resource.id), code(&format!("out/{from}")), code(&format!("out/{to}"))));
    }
    if let (Change::Removed, Some(path)) = (resource.change, &resource.before) {
        let lines = resource.diff.lines().filter(|l| l.starts_with('-') && !l.starts_with("--- ")).count();
        return within(format!(
            "**removed** {} ({}, {})\n\n",
            code(&resource.id),
            code(&format!("out/{path}")),
            crate::text::plural(lines, "line", "lines")
        ));
    }
    // Line by line, so the line breaks stay: a control or bidirectional character of a file
    // is shown escaped, never reorders what the reviewer reads.
    let diff: String = resource
        .diff
        .split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(text) => format!("{}\n", crate::text::printable(text)),
            None => crate::text::printable(line).into_owned(),
        })
        .collect();
    let longest_run = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let mut block = format!("**{}** {}\n\n{fence}diff\n", resource.change.as_str(), code(&resource.id));
    let end = format!("{fence}\n\n");
    match room {
        None => block.push_str(&diff),
        Some(room) => {
            let cut_line = "… (cut)\n";
            if block.len() + cut_line.len() + end.len() > room {
                return String::new();
            }
            for line in diff.split_inclusive('\n') {
                if block.len() + line.len() + cut_line.len() + end.len() > room {
                    block.push_str(cut_line);
                    break;
                }
                block.push_str(line);
            }
        }
    }
    if !block.ends_with('\n') {
        block.push('\n');
    }
    block.push_str(&end);
    block
}

/// Text with code in backticks (rustc style), as Markdown: code spans kept, everything else
/// escaped so no character of it is read as markup. Line breaks and other controls are shown
/// escaped ([`printable`]): a value from the pull request (a path, a template's value) cannot
/// start a line of its own, where it would be a heading, a list item or a code fence that
/// swallows the risks after it.
pub(crate) fn inline(text: &str) -> String {
    spans(text, |code| format!("`{code}`"))
}

/// [`inline`] for a table cell: a `|` splits a cell even inside a code span unless escaped
/// (GFM's tables extension takes `\|` there).
fn cell(text: &str) -> String {
    spans(text, |code| format!("`{}`", code.replace('|', "\\|")))
}

fn spans(text: &str, code_span: impl Fn(&str) -> String) -> String {
    let text = printable(text);
    if text.matches('`').count() % 2 == 1 {
        return escape(&text);
    }
    text.split('`').enumerate().map(|(i, part)| if i % 2 == 1 { code_span(part) } else { escape(part) }).collect()
}

/// At most `max` bytes of `text` (cut at a character), and a mark where it was cut: one value
/// of the pull request, however long, cannot take the room of the risks after it.
fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}… (cut here; the text report has it whole)", &text[..end]).into()
}

/// How long one risk's line, or one of its details, may be in the comment.
const MAX_LINE: usize = 2_000;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '!' | '&') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text inside an HTML block (`<summary>`): escaped, and on one line, as a blank line would end
/// the block and let what follows be read as Markdown.
fn html(text: &str) -> String {
    printable(text).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::UserChange;

    fn plan(users: usize, lines: usize) -> Plan {
        let diff: String = std::iter::once("--- a/out/x\n+++ b/out/x\n@@ -1 +1 @@\n".to_string())
            .chain((0..lines).map(|i| format!("+line {i}\n")))
            .collect();
        let resource = ResourceChange {
            id: "ConfigMap/ns/x".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "x".into(),
            change: Change::Changed,
            before: Some("x".into()),
            after: Some("x".into()),
            diff,
        };
        Plan {
            users: (0..users)
                .map(|i| UserChange { user: format!("u{i}"), change: Change::Changed, resources: vec![resource.clone(), resource.clone()] })
                .collect(),
            risks: Vec::new(),
            fields: Vec::new(),
            ..Plan::default()
        }
    }

    #[test]
    fn stays_under_the_budget_and_says_what_it_cut() {
        let big = plan(50, 400);
        let markdown = render_within(&big, &Baseline::Revision("origin/main"), 20_000);
        assert!(markdown.len() <= 20_000, "{}", markdown.len());
        assert!(markdown.contains("resource diffs are not shown in full"), "{markdown}");
        assert!(markdown.contains("Run `devbox-gen diff --base origin/main` to see everything."));
        assert_eq!(markdown.matches("<details>").count(), markdown.matches("</details>").count());
        assert_eq!(markdown.matches("```diff").count() * 2, markdown.matches("```").count(), "fences are balanced");
        let full = render(&plan(2, 10), &Baseline::Disk);
        assert!(!full.contains("not shown"), "{full}");
    }

    /// A PR that gives every box a new key and stops three: the three must not vanish among
    /// the keys, and the comment must not call a cut list complete.
    #[test]
    fn risks_cut_for_room_are_still_named_or_counted() {
        use crate::diff::risk::{Kind, Risk};
        let risk = |kind: Kind, user: String, summary: &str, details: usize| Risk {
            kind,
            resource: format!("StatefulSet/ns/{user}"),
            user,
            summary: summary.into(),
            details: vec!["a sentence of what it means, long enough to take room. ".repeat(3); details],
            help: Vec::new(),
            facts: std::collections::BTreeMap::new(),
        };
        let mut big = plan(300, 50);
        for i in 0..300 {
            big.risks.push(risk(Kind::KeyAdded, format!("u{i}"), &format!("key {i} may log in"), 2));
        }
        for i in 297..300 {
            big.risks.push(risk(Kind::BoxStopped, format!("u{i}"), "the box is stopped", 1));
        }
        let markdown = render_within(&big, &Baseline::Disk, 20_000);
        assert!(markdown.len() <= 20_000, "{}", markdown.len());
        let listed = markdown.contains("⚠️ DOWNTIME** **3 users**: the box is stopped");
        assert!(listed || markdown.contains("3 ⚠️ DOWNTIME"), "the stopped boxes are neither listed nor counted:\n{markdown}");
        assert!(markdown.contains("more (") && !markdown.contains("The risks above are complete"), "{markdown}");
        assert!(markdown.contains("Some risks above are counted, not listed."), "{markdown}");
        // With room, every risk is listed and the note says so.
        let roomy = render_within(&big, &Baseline::Disk, 2_000_000);
        assert!(roomy.contains("⚠️ DOWNTIME** **3 users**: the box is stopped"), "{roomy}");
        assert!(!roomy.contains("more ("), "nothing is counted instead of listed");
    }

    /// 300 boxes removed at once: their risks take half the comment, and the cost table
    /// still shows its row rather than only "… and 1 more".
    #[test]
    fn the_cost_table_keeps_a_share_of_its_own() {
        use crate::diff::cost::{BoxCost, Side, State};
        use crate::diff::risk::{Kind, Risk};
        let mut big = plan(300, 50);
        for i in 0..300 {
            big.risks.push(Risk {
                kind: Kind::BoxRemoved,
                resource: format!("StatefulSet/ns/u{i}"),
                user: format!("u{i}"),
                summary: format!("the box u{i} leaves out/, and a sentence long enough to take room"),
                details: vec!["what it means, at length. ".repeat(4)],
                help: Vec::new(),
                facts: std::collections::BTreeMap::new(),
            });
            big.cost.push(BoxCost {
                user: format!("u{i}"),
                before: Side::default(),
                after: Side::default(),
                states: Some((State::Running, State::Absent)),
            });
        }
        let markdown = render_within(&big, &Baseline::Disk, 20_000);
        assert!(markdown.len() <= 20_000, "{}", markdown.len());
        let table = &markdown[markdown.find("| box | what changes |").expect("a cost table")..];
        assert!(table.contains("| 300 users: u0, u1, u2, u3,"), "{table}");
    }

    #[test]
    fn a_real_budget_holds_a_huge_change() {
        let markdown = render(&plan(300, 200), &Baseline::Disk);
        assert!(markdown.chars().count() < GITHUB_COMMENT_LIMIT && markdown.len() <= BUDGET, "{}", markdown.len());
    }

    #[test]
    fn a_files_bidirectional_and_control_characters_are_shown_escaped() {
        let mut tricky = plan(1, 0);
        tricky.users[0].resources[0].diff = "@@ -1 +1 @@\n+  authorized_keys: ssh-ed25519 AAAA evil\u{202e}gnp.exe\u{1b}[2J\n".into();
        let markdown = render(&tricky, &Baseline::Disk);
        assert!(!markdown.contains('\u{202e}') && !markdown.contains('\u{1b}'), "{markdown}");
        assert!(markdown.contains("evil\\u{202e}gnp.exe\\u{1b}[2J\n"), "the line keeps its break: {markdown}");
    }

    /// A risk with only its one line.
    fn risk(kind: crate::diff::risk::Kind, user: &str, summary: String) -> crate::diff::risk::Risk {
        crate::diff::risk::Risk {
            kind,
            resource: format!("StatefulSet/ns/{user}"),
            user: user.into(),
            summary,
            details: Vec::new(),
            help: Vec::new(),
            facts: std::collections::BTreeMap::new(),
        }
    }

    /// Text of the pull request in a risk (a template's `HOME`, a hand-written file's path) that
    /// would, raw, end its list item and open a heading and a code fence swallowing every risk
    /// after it: it stays on its line, and the risk after it is still a list item.
    #[test]
    fn a_line_break_in_a_value_cannot_start_markup_of_its_own() {
        use crate::diff::risk::Kind;
        let fence = "`".repeat(40);
        let mut tricky = plan(1, 1);
        let injected = format!("HOME /storage/jupyter\n\nNo other risks.\n=====\n\n{fence}\r- fake");
        tricky.risks.push(risk(Kind::HomeOwnerChanged, "dave\n# fake heading", injected));
        tricky.risks.push(risk(Kind::HomeVolumeRemoved, "carol", "the home volume `carol-home` leaves out/".into()));
        let markdown = render(&tricky, &Baseline::Disk);
        for line in markdown.lines() {
            assert!(
                !line.starts_with("No other risks")
                    && !line.starts_with("=====")
                    && !line.starts_with(&fence)
                    && !line.starts_with("# fake"),
                "{line}"
            );
        }
        assert!(markdown.contains("\n- **🛑 DATA** **carol**: the home volume `carol-home` leaves out/\n"), "{markdown}");
    }

    /// A `|` in a table cell, inside a code span too, is escaped, so it cannot add a cell.
    #[test]
    fn a_pipe_in_a_cell_stays_in_its_cell() {
        assert_eq!(cell("no `gpu_hour` for `nvidia | x`"), "no `gpu_hour` for `nvidia \\| x`");
        assert_eq!(cell("a | b"), "a \\| b");
    }

    /// One risk as long as the comment cannot push the others out: it is cut, and a home
    /// volume removed after it is still named.
    #[test]
    fn one_long_risk_leaves_room_for_the_others() {
        use crate::diff::risk::Kind;
        let mut padded = plan(1, 1);
        padded.risks.push(risk(Kind::HomeOwnerChanged, "dave", format!("HOME /storage/{}", "a".repeat(46_000))));
        padded.risks.push(risk(Kind::HomeVolumeRemoved, "carol", "the home volume `carol-home` leaves out/".into()));
        let markdown = render(&padded, &Baseline::Disk);
        assert!(markdown.contains("**carol**: the home volume `carol-home` leaves out/"), "{}", &markdown[..2_000]);
        assert!(markdown.contains("… (cut here; the text report has it whole)"));
        assert!(markdown.len() <= BUDGET);
    }

    /// A resource whose name alone is longer than the comment: the report still fits.
    #[test]
    fn a_huge_name_cannot_push_the_comment_over_the_limit() {
        let mut huge = plan(2, 1);
        huge.users[1].resources[0].id = format!("ConfigMap/ns/{}", "a".repeat(70_000));
        huge.users[1].resources[0].change = Change::Added;
        let markdown = render(&huge, &Baseline::Disk);
        assert!(markdown.len() <= BUDGET, "{}", markdown.len());
        huge.users[1].resources[0].change = Change::Removed;
        huge.users[1].resources[0].before = Some(format!("x/{}", "b".repeat(70_000)));
        assert!(render(&huge, &Baseline::Disk).len() <= BUDGET);
    }

    #[test]
    fn prose_is_escaped_and_code_is_kept() {
        assert_eq!(inline("a *b* `c*d` <e>"), "a \\*b\\* `c*d` \\<e\\>");
        assert_eq!(inline("odd ` one"), "odd \\` one");
    }
}
