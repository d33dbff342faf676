//! The machine-readable report, for bots and CI steps. Its shape is a contract, documented in
//! docs/reviewing.md: `version` changes when a field is removed or changes meaning; new fields
//! may appear at any time.

use serde_json::{Value, json};

use std::collections::BTreeSet;

use super::Baseline;
use crate::diff::Plan;
use crate::diff::cost::{Amount, Figures, HOURS_PER_MONTH, Side, State, json_amount, json_delta, json_figures};

/// Bumped only for incompatible changes.
pub(crate) const VERSION: u32 = 1;

pub(crate) fn render(plan: &Plan, baseline: &Baseline) -> String {
    let mut text = serde_json::to_string_pretty(&value(plan, baseline)).unwrap_or_default();
    text.push('\n');
    text
}

pub(crate) fn value(plan: &Plan, baseline: &Baseline) -> Value {
    let counts = plan.counts();
    json!({
        "version": VERSION,
        "base": match baseline {
            Baseline::Disk => Value::Null,
            Baseline::Revision(rev) => Value::String((*rev).to_string()),
        },
        "changed": !plan.is_empty(),
        "out_behind": plan.out_behind.len(),
        "out_behind_files": plan.out_behind.iter().map(|path| format!("out/{path}")).collect::<Vec<_>>(),
        "notes": plan.notes.iter().map(|note| json!({"message": note.message, "help": note.help})).collect::<Vec<_>>(),
        "summary": plan.summary(),
        "counts": {
            "users": {"added": counts.users_added, "removed": counts.users_removed, "changed": counts.users_changed},
            "resources": {"added": counts.resources_added, "removed": counts.resources_removed, "changed": counts.resources_changed},
            "shared_resources": counts.shared_resources,
            "hand_written": counts.hand_written,
        },
        "risks": plan.risks.iter().map(|risk| json!({
            "level": risk.level().as_str(),
            "kind": risk.kind.as_str(),
            "user": risk.user,
            "resource": risk.resource,
            "summary": risk.summary,
            "details": risk.details,
            "help": risk.help,
            "facts": risk.facts,
        })).collect::<Vec<_>>(),
        "fields": plan.fields.iter().map(|field| json!({
            "kind": field.kind,
            "path": field.path,
            "users": field.users,
        })).collect::<Vec<_>>(),
        "cost": cost(plan),
        "users": plan.users.iter().map(|user| json!({
            "user": user.user,
            "change": user.change.as_str(),
            "resources": user.resources.iter().map(|r| json!({
                "id": r.id,
                "kind": r.kind,
                "namespace": r.namespace,
                "name": r.name,
                "change": r.change.as_str(),
                "before": r.before.as_ref().map(|p| format!("out/{p}")),
                "after": r.after.as_ref().map(|p| format!("out/{p}")),
                "diff": r.diff,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// What a month costs before and after if the boxes with working hours run only then.
fn in_working_hours(monthly: Option<(Amount, Amount)>) -> Value {
    monthly.map_or(Value::Null, |(before, after)| {
        json!({"monthly_before": json_amount(before), "monthly_after": json_amount(after), "delta": json_amount(after - before)})
    })
}

/// The `cost` object: the amounts with `[prices]` (`null` without), and always the figures.
fn cost(plan: &Plan) -> Value {
    let report = plan.cost();
    let priced = report.prices.is_some();
    let (before, after) = report.totals();
    let (total_before, total_after) = report.figures();
    let unpriced: BTreeSet<&String> = report.items.iter().flat_map(|i| &i.unpriced).collect();
    let users: Vec<Value> = report
        .items
        .iter()
        .map(|item| {
            let box_cost = item.cost;
            let (figures_before, figures_after) = (box_cost.before.billed(), box_cost.after.billed());
            let side = |figures: &Figures, side: &Side, state: Option<State>, monthly: Option<Amount>| {
                let mut value = json!({
                    "state": state.map(State::as_str),
                    "spot": side.spot(),
                    "stops_by_itself": side.stops_by_itself(),
                    "left_running": side.left_running(),
                    "working_hours": side.working_hours().map(|hours| hours.text.as_str()),
                    "monthly": monthly.map(json_amount),
                });
                if let (Value::Object(value), Value::Object(figures)) = (&mut value, json_figures(figures)) {
                    value.extend(figures);
                }
                value
            };
            let mut delta = json!({"monthly": item.delta().map(json_amount)});
            if let (Value::Object(delta), Value::Object(figures)) = (&mut delta, json_delta(&figures_before, &figures_after)) {
                delta.extend(figures);
            }
            json!({
                "user": box_cost.user,
                "what": box_cost.what(),
                "before": side(&figures_before, &box_cost.before, box_cost.states.map(|s| s.0), item.monthly.map(|m| m.0)),
                "after": side(&figures_after, &box_cost.after, box_cost.states.map(|s| s.1), item.monthly.map(|m| m.1)),
                "delta": delta,
                "in_working_hours": in_working_hours(item.in_working_hours),
                "unpriced_gpus": item.unpriced,
            })
        })
        .collect();
    json!({
        "currency": report.prices.map(|p| p.currency.as_str()),
        "hours_per_month": HOURS_PER_MONTH,
        "monthly_before": priced.then(|| json_amount(before)),
        "monthly_after": priced.then(|| json_amount(after)),
        "delta": priced.then(|| json_amount(after - before)),
        "in_working_hours": in_working_hours(report.totals_in_working_hours()),
        "resources": json_delta(&total_before, &total_after),
        "unpriced_gpus": unpriced,
        "users": users,
    })
}
