//! Sync risks: fields of a StatefulSet or a PersistentVolumeClaim that the API server refuses to
//! update, so the GitOps sync fails until someone recreates the object by hand.

use super::{Kind, Risk, code, namespace_flag, spec};
use crate::diff::resource::Resource;

const STATEFULSET_IMMUTABLE: [&str; 4] = ["selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy"];
const PVC_IMMUTABLE: [&str; 5] = ["accessModes", "volumeMode", "selector", "dataSource", "volumeName"];

pub(super) fn fields(old: &Resource, new: &Resource) -> Option<Risk> {
    let fields: &[&str] = match old.kind.as_str() {
        "StatefulSet" => &STATEFULSET_IMMUTABLE,
        "PersistentVolumeClaim" => &PVC_IMMUTABLE,
        _ => return None,
    };
    let changed: Vec<&str> = fields.iter().copied().filter(|f| spec(old, f) != spec(new, f)).collect();
    if changed.is_empty() {
        return None;
    }
    let list = changed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
    let summary = format!("{} {} changes fields Kubernetes cannot update: {list}", old.kind, code(&old.name));
    let ns = namespace_flag(new);
    let risk = Risk::new(Kind::ImmutableField, new, summary).fact("fields", changed.join(","));
    Some(if old.kind == "StatefulSet" {
        risk.detail(format!("The API server refuses this update, so the Argo CD or Flux sync of {} fails until the StatefulSet is recreated. The home volume is a standalone claim: recreating the StatefulSet does not touch it.", code(&new.id)))
            .help(format!("after merging, delete only the StatefulSet object, leaving its pod running: `kubectl {ns}delete statefulset {} --cascade=orphan`", new.name))
            .help("sync again (`argocd app sync ...` or `flux reconcile kustomization ...`): the StatefulSet is recreated with the new fields")
            .help(format!("then replace the old pod, which the new StatefulSet may not adopt: `kubectl {ns}delete pod {}-0`", new.name))
    } else {
        risk.detail(
            "The API server refuses this update, so the sync of this claim fails. A claim cannot be recreated without losing its data.",
        )
        .help("set the field back; to really change it, copy the data into a new claim by hand")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{kinds, set, statefulset};

    #[test]
    fn immutable_fields_stop_the_sync() {
        let old = statefulset("alice", 1, "i:1", None);
        let mut new = old.clone();
        new.object.as_mut().unwrap()["spec"]["serviceName"] = json!("other");
        let risks = classify(&set(vec![old]), &set(vec![new]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["immutable-field"]);
        assert!(risks[0].summary.contains("`serviceName`"));
        assert!(risks[0].help[0].contains("--cascade=orphan"));
    }
}
