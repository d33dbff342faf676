//! `devbox-gen list [--format text|markdown|json]`: every box, one line each, as its user file
//! and devbox.toml's `[defaults]` make it: what an admin asks first (who runs what, who has a
//! GPU, which boxes stop by themselves), and what they take together in each namespace, beside
//! `[quota]`. One box is rendered, to count what the template's other containers request.

use crate::autostop;
use crate::cli::Format;
use crate::diagnostic::Diagnostics;
use crate::model::{Quota, State};
use crate::pipeline::{measure_overhead, resolve_repo};
use crate::quantity::Quantity;
use crate::quota::{self, Overheads, Resource};
use crate::resolve::ResolvedBox;
use crate::{Context, Outcome};

pub(super) fn run(context: &mut Context, format: Format) -> Result<Outcome, Diagnostics> {
    let (repo, boxes, warnings) = resolve_repo(&context.root, None)?;
    context.warn(warnings);
    let text = match format {
        // What `show --input` prints: the boxes as the template gets them.
        Format::Json => serde_json::to_string_pretty(&boxes).expect("a resolved box is plain data") + "\n",
        Format::Text | Format::Markdown => {
            // A template that does not render is `build`'s to report; the table stands without it.
            let overheads = measure_overhead(&repo, &boxes).ok();
            let totals = totals(&boxes, overheads, &repo.settings().quota);
            if format == Format::Text { text(&boxes, &totals) } else { markdown(&boxes, &totals) }
        }
    };
    crate::stdio::print(text)?;
    Ok(Outcome::Clean)
}

/// The columns, and each box's values in them. CLUSTER only when the boxes have clusters.
fn rows(boxes: &[ResolvedBox]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let clusters = boxes.iter().any(|b| b.cluster.is_some());
    let mut header = vec!["NAME", "STATE"];
    if clusters {
        header.push("CLUSTER");
    }
    header.extend(["CPU", "MEMORY", "GPU", "HOME", "STOPS BY ITSELF", "OWNER"]);
    let rows = boxes
        .iter()
        .map(|b| {
            let mut row = vec![b.name.clone(), state(b)];
            if clusters {
                row.push(b.cluster.clone().unwrap_or_default());
            }
            row.extend([b.resources.cpu.clone(), b.resources.memory.clone(), gpu(b), b.home.size.clone(), stops(b), b.email.clone()]);
            row
        })
        .collect();
    (header, rows)
}

/// `running`, `running on Spot`, `stopped`.
fn state(b: &ResolvedBox) -> String {
    match b.state {
        State::Running if b.spot => "running on Spot".into(),
        state => state.to_string(),
    }
}

/// `1 × nvidia-l4`, `1 × nvidia-l4 (time-sharing)`, or `-`.
fn gpu(b: &ResolvedBox) -> String {
    match &b.gpu {
        None => "-".into(),
        Some(gpu) => match gpu.sharing {
            None => format!("{} × {}", gpu.count, gpu.kind),
            Some(sharing) => format!("{} × {} ({sharing})", gpu.count, gpu.kind),
        },
    }
}

/// `after 2h idle`, `after 1h idle outside mon-fri 08:00-19:00 Europe/Berlin`, or `-`: only
/// for a running box, since Git keeps the others stopped. (Working hours need an idle window.)
fn stops(b: &ResolvedBox) -> String {
    let Some(seconds) = b.idle.after_seconds.filter(|_| b.autostops()) else { return "-".into() };
    let idle = format!("after {} idle", autostop::human(seconds));
    match &b.schedule {
        Some(hours) => format!("{idle} outside {}", hours.describe()),
        None => idle,
    }
}

/// `5 boxes: 3 running, 1 stopped, 1 archived`.
fn summary(boxes: &[ResolvedBox]) -> String {
    let count = |state: State| boxes.iter().filter(|b| b.state == state).count();
    let states: Vec<String> = [State::Running, State::Stopped, State::Archived]
        .into_iter()
        .filter(|s| count(*s) > 0)
        .map(|s| format!("{} {s}", count(s)))
        .collect();
    let total = crate::text::plural(boxes.len(), "box", "boxes");
    if states.is_empty() { total } else { format!("{total}: {}", states.join(", ")) }
}

/// What the boxes of each namespace take together, beside `[quota]`: `devboxes: running boxes
/// request 15.25 of 64 CPUs, 62208Mi of 256Gi memory, 1 of 4 GPUs (sidecars included); home
/// volumes take 600Gi of 2Ti`. CPU and memory count the template's other containers (the
/// tailscale sidecar, the idle container), as the ResourceQuota does, when the template renders
/// (`None`: it does not, and the line says so).
fn totals(boxes: &[ResolvedBox], overheads: Option<Overheads>, limits: &Quota) -> Vec<String> {
    let mut places: Vec<(Option<String>, String)> = boxes.iter().map(|b| (b.cluster.clone(), b.namespace.clone())).collect();
    places.sort();
    places.dedup();
    let usages: Vec<(Resource, Vec<quota::Usage>)> =
        Resource::ALL.into_iter().map(|r| (r, quota::usage(boxes, r, overheads.unwrap_or(Overheads::NONE)))).collect();
    places
        .into_iter()
        .map(|(cluster, namespace)| {
            let of = |resource: Resource| {
                let (_, usage) = usages.iter().find(|(r, _)| *r == resource).expect("every resource");
                let total = usage.iter().find(|u| u.cluster == cluster && u.namespace == namespace).map(|u| u.total);
                match (total, resource.limit(limits)) {
                    (None, None) => None,
                    (total, None) => Some(resource.amount(total.unwrap_or(Quantity::ZERO))),
                    // `4.5 of 64 CPUs`, `60Gi of 256Gi`: the unit once.
                    (total, Some((_, limit))) => {
                        let total = total.unwrap_or(Quantity::ZERO);
                        let shown =
                            if matches!(resource, Resource::Cpu | Resource::Gpu) { resource.show(total) } else { resource.amount(total) };
                        Some(format!("{shown} of {}", resource.amount(limit)))
                    }
                }
            };
            let mut running: Vec<String> = Vec::new();
            running.extend(of(Resource::Cpu));
            running.extend(of(Resource::Memory).map(|m| format!("{m} memory")));
            running.extend(of(Resource::Gpu));
            let place = match &cluster {
                Some(cluster) => format!("{namespace} on {cluster}"),
                None => namespace.clone(),
            };
            let counted = match overheads {
                Some(_) => "sidecars included",
                None => "sidecars not counted: the template does not render",
            };
            let requests = if running.is_empty() {
                "no running box".to_string()
            } else {
                format!("running boxes request {} ({counted})", running.join(", "))
            };
            let homes = of(Resource::Storage).map_or_else(String::new, |h| format!("; home volumes take {h}"));
            format!("{place}: {requests}{homes}")
        })
        .collect()
}

/// Columns padded to their widest value (in characters: `×` is one), two spaces apart.
fn text(boxes: &[ResolvedBox], totals: &[String]) -> String {
    let (header, rows) = rows(boxes);
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let line = |values: Vec<&str>| {
        let cells: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v}{}", " ".repeat(w - v.chars().count()))).collect();
        cells.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&line(header));
        for row in &rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out.push('\n');
    }
    out.push_str(&summary(boxes));
    out.push('\n');
    for line in totals {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A table for a PR description or a wiki page.
fn markdown(boxes: &[ResolvedBox], totals: &[String]) -> String {
    let (header, rows) = rows(boxes);
    let cell = |value: &str| value.replace('|', "\\|");
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in &rows {
        out.push_str(&format!("| {} |\n", row.iter().map(|v| cell(v)).collect::<Vec<_>>().join(" | ")));
    }
    out.push_str(&format!("\n{}\n", summary(boxes)));
    for line in totals {
        out.push_str(&format!("\n{line}\n"));
    }
    out
}
