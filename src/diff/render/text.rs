//! The terminal report: risks in coloured, aligned blocks, then `git diff`-style output per
//! resource. Colour comes from the `WriteColor` it is given (the caller decides: `--color`, a
//! TTY, `NO_COLOR`); control characters from the files are shown escaped, never sent to the
//! terminal.

use std::io;

use codespan_reporting::term::termcolor::{Color, ColorSpec, WriteColor};

use super::{
    Baseline, behind_note, cost_heading, field_line, fields_heading, fleet_fields, group_costs, group_risks, risks_heading, summary_line,
    user_heading,
};
use crate::diff::Plan;
use crate::diff::risk::Level;
use crate::text::printable;

/// Width of the level column.
const LEVEL_WIDTH: usize = 9;

/// How many users a grouped risk names in a terminal; `--format json` lists every one.
const USERS_SHOWN: usize = 20;

/// How many fields "What changes, by field" lists in a terminal.
const FIELDS_SHOWN: usize = 30;

/// How many lines (boxes, or groups of boxes that change alike) the cost section shows.
const COSTS_SHOWN: usize = 30;

pub(crate) fn render(plan: &Plan, baseline: &Baseline, out: &mut dyn WriteColor) -> io::Result<()> {
    if let Some(note) = behind_note(plan) {
        out.set_color(ColorSpec::new().set_fg(Some(Color::Yellow)).set_bold(true))?;
        write!(out, "note")?;
        out.reset()?;
        writeln!(out, ": {note}\n")?;
    }
    if plan.is_empty() {
        writeln!(out, "{}", summary_line(plan, baseline))?;
        return Ok(());
    }
    let groups = group_risks(plan);
    bold(out, &risks_heading(plan, &groups))?;
    if !plan.risks.is_empty() {
        writeln!(out)?;
    }
    for group in &groups {
        let risk = group.risk;
        let (color, label) = level_style(risk.level());
        out.set_color(ColorSpec::new().set_fg(Some(color)).set_bold(true))?;
        write!(out, "  {label:<LEVEL_WIDTH$}")?;
        out.reset()?;
        out.set_color(ColorSpec::new().set_bold(true))?;
        write!(out, "{}", printable(&group.who()))?;
        out.reset()?;
        writeln!(out, ": {}", printable(&risk.summary))?;
        let indent = " ".repeat(LEVEL_WIDTH + 2);
        if group.users.len() > 1 {
            let more = if group.users.len() > USERS_SHOWN { " (`--format json` lists every one)" } else { "" };
            let label = if group.users.iter().all(|user| crate::diff::is_hand_written_group(user)) { "files" } else { "users" };
            writeln!(out, "{indent}{label}: {}{more}", printable(&group.user_list(USERS_SHOWN)))?;
        }
        for detail in &risk.details {
            writeln!(out, "{indent}{}", printable(detail))?;
        }
        for help in &risk.help {
            out.set_color(ColorSpec::new().set_fg(Some(Color::Cyan)))?;
            write!(out, "{indent}help")?;
            out.reset()?;
            writeln!(out, ": {}", printable(help))?;
        }
    }
    writeln!(out)?;
    let fields = fleet_fields(plan);
    if !fields.is_empty() {
        bold(out, &fields_heading(fields))?;
        for field in fields.iter().take(FIELDS_SHOWN) {
            writeln!(out, "  {}", printable(&field_line(field, USERS_SHOWN)))?;
        }
        if fields.len() > FIELDS_SHOWN {
            writeln!(out, "  … and {} more (`--format json` lists every one)", fields.len() - FIELDS_SHOWN)?;
        }
        writeln!(out)?;
    }
    let report = plan.cost();
    if let Some((total, covers)) = cost_heading(&report) {
        out.set_color(ColorSpec::new().set_bold(true))?;
        write!(out, "{}", printable(&total))?;
        out.reset()?;
        writeln!(out, " ({}):", printable(&covers))?;
        let groups = group_costs(&report);
        for group in groups.iter().take(COSTS_SHOWN) {
            writeln!(out, "  {}: {}", printable(&group.who(&report)), printable(&group.what))?;
            if group.users.len() > 1 {
                let more = if group.users.len() > USERS_SHOWN { " (`--format json` lists every one)" } else { "" };
                writeln!(out, "    users: {}{more}", printable(&group.user_list(USERS_SHOWN)))?;
            }
        }
        if groups.len() > COSTS_SHOWN {
            writeln!(out, "  … and {} more (`--format json` lists every one)", groups.len() - COSTS_SHOWN)?;
        }
        writeln!(out)?;
    }
    bold(out, &summary_line(plan, baseline))?;
    writeln!(out)?;
    for user in &plan.users {
        out.set_color(ColorSpec::new().set_bold(true).set_underline(true))?;
        write!(out, "{}", printable(&user_heading(user)))?;
        out.reset()?;
        writeln!(out)?;
        for resource in &user.resources {
            out.set_color(ColorSpec::new().set_bold(true))?;
            if let Some((from, to)) = resource.moved_only() {
                writeln!(out, "moved {}: out/{} → out/{}", printable(&resource.id), printable(from), printable(to))?;
                out.reset()?;
                continue;
            }
            writeln!(out, "{} {}", resource.change.as_str(), printable(&resource.id))?;
            out.reset()?;
            diff(out, &resource.diff)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn level_style(level: Level) -> (Color, &'static str) {
    match level {
        Level::Data => (Color::Red, "DATA"),
        Level::Sync => (Color::Red, "SYNC"),
        Level::Access => (Color::Magenta, "ACCESS"),
        Level::Downtime => (Color::Yellow, "DOWNTIME"),
        Level::Restart => (Color::Yellow, "RESTART"),
    }
}

fn bold(out: &mut dyn WriteColor, line: &str) -> io::Result<()> {
    out.set_color(ColorSpec::new().set_bold(true))?;
    write!(out, "{line}")?;
    out.reset()?;
    writeln!(out)
}

/// A unified diff, coloured like git's: headers bold, hunk headers cyan, `-` red, `+` green.
fn diff(out: &mut dyn WriteColor, diff: &str) -> io::Result<()> {
    for (i, line) in diff.lines().enumerate() {
        let mut spec = ColorSpec::new();
        if i < 2 && (line.starts_with("--- ") || line.starts_with("+++ ")) {
            spec.set_bold(true);
        } else if line.starts_with("@@") {
            spec.set_fg(Some(Color::Cyan));
        } else if line.starts_with('-') {
            spec.set_fg(Some(Color::Red));
        } else if line.starts_with('+') {
            spec.set_fg(Some(Color::Green));
        }
        out.set_color(&spec)?;
        write!(out, "{}", printable(line))?;
        out.reset()?;
        writeln!(out)?;
    }
    Ok(())
}
