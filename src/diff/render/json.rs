//! The machine-readable report, for bots and CI steps. Its shape is a contract, documented in
//! docs/reviewing.md: `version` changes when a field is removed or changes meaning; new fields
//! may appear at any time.

use serde_json::{Value, json};

use super::Baseline;
use crate::diff::Plan;

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
        "summary": plan.summary(),
        "counts": {
            "users": {"added": counts.users_added, "removed": counts.users_removed, "changed": counts.users_changed},
            "resources": {"added": counts.resources_added, "removed": counts.resources_removed, "changed": counts.resources_changed},
            "shared_resources": counts.shared_resources,
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
