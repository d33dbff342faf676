//! Access risks of the box's owner in Kubernetes (devbox.toml's `[owners]`): a Role limited by
//! name to the box's own StatefulSet and pod, bound to the owner as a Kubernetes User, granted,
//! changed or taken away.
//!
//! The Role and RoleBinding are the ones labelled with the `owner` component, as the template's
//! `ownerRole` makes them; what they allow is read from their rules, so a template that grants
//! more is reported with what it grants.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Kind, Risk, code, label, owner_email, spec};
use crate::diff::resource::{Resource, Resources};

const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const OWNER_COMPONENT: &str = "owner";

fn is_owner_object(resource: &Resource, kind: &str) -> bool {
    resource.kind == kind && label(resource, COMPONENT_LABEL) == Some(OWNER_COMPONENT)
}

fn rules(role: &Resource) -> impl Iterator<Item = &Value> {
    role.object.as_ref().and_then(|o| o.get("rules")).and_then(Value::as_array).into_iter().flatten()
}

fn strings<'a>(rule: &'a Value, key: &str) -> Vec<&'a str> {
    rule.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// What a Role lets its subject do, in `[owners] allow`'s words (`scale`, `logs`, `exec`), then
/// anything else it grants as `resource: verbs`. Reading the StatefulSet and the pod, which
/// kubectl does first (`kubectl wait` after a wake lists and watches), is part of those and not
/// listed.
fn abilities(role: &Resource) -> Vec<String> {
    let mut known = BTreeSet::new();
    let mut other = Vec::new();
    for rule in rules(role) {
        let verbs = strings(rule, "verbs");
        let can = |verb: &str| verbs.iter().any(|v| *v == verb || *v == "*");
        for resource in strings(rule, "resources") {
            match resource {
                "statefulsets/scale" if can("patch") || can("update") => {
                    known.insert(0);
                }
                "pods/log" if can("get") => {
                    known.insert(1);
                }
                "pods/exec" if can("create") => {
                    known.insert(2);
                }
                "statefulsets" | "pods" | "statefulsets/scale" | "pods/log" | "pods/exec"
                    if verbs.iter().all(|v| matches!(*v, "get" | "list" | "watch")) => {}
                _ => other.push(format!("{}: {}", resource, verbs.join(","))),
            }
        }
    }
    let names = ["scale", "logs", "exec"];
    known.into_iter().map(|i| names[i].to_string()).chain(other).collect()
}

/// The rules, as RBAC writes them: `` `statefulsets/scale` get, patch; `pods/exec` create ``.
fn rules_text(role: &Resource) -> String {
    let mut parts = Vec::new();
    for rule in rules(role) {
        let verbs = strings(rule, "verbs").join(", ");
        for resource in strings(rule, "resources") {
            parts.push(format!("{} {verbs}", code(resource)));
        }
    }
    parts.join("; ")
}

/// The resources of rules that name no object: they reach every one of the namespace.
fn unlimited(role: &Resource) -> Vec<String> {
    rules(role).filter(|rule| strings(rule, "resourceNames").is_empty()).flat_map(|rule| strings(rule, "resources")).map(code).collect()
}

/// What the Role allows, and whether only on this box.
fn scope_detail(role: &Resource) -> String {
    let reach = match unlimited(role)[..] {
        [] => "each rule names this box's own StatefulSet or pod".to_string(),
        ref open => format!(
            "the rules for {} name no object, so they reach every one in the namespace, other people's boxes included",
            open.join(", ")
        ),
    };
    format!("It allows {}; {reach}.", rules_text(role))
}

/// `scale (start and stop it), logs (read them), exec (run commands in it)`.
fn describe(abilities: &[String]) -> String {
    if abilities.is_empty() {
        return "nothing".into();
    }
    abilities
        .iter()
        .map(|a| match a.as_str() {
            "scale" => "scale (start and stop it)".to_string(),
            "logs" => "logs (read them)".to_string(),
            "exec" => "exec (run commands in it)".to_string(),
            other => code(other),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Kubernetes users and groups a RoleBinding binds (not service accounts).
fn people(binding: &Resource) -> Vec<String> {
    let subjects = binding.object.as_ref().and_then(|o| o.get("subjects")).and_then(Value::as_array);
    subjects
        .into_iter()
        .flatten()
        .filter(|s| matches!(s.get("kind").and_then(Value::as_str), Some("User" | "Group")))
        .filter_map(|s| {
            let name = s.get("name")?.as_str()?;
            Some(if s.get("kind")?.as_str()? == "Group" { format!("group {name}") } else { name.to_string() })
        })
        .collect()
}

/// Who the binding names, in words the same for every box of the fleet when it is the owner's
/// email (behind `[owners] user_prefix`), so that a fleet-wide grant is told once.
fn who(binding: Option<&Resource>) -> String {
    let Some(binding) = binding else { return "the owner's Kubernetes user".into() };
    let subjects = people(binding);
    let email = owner_email(binding).unwrap_or("");
    match subjects.as_slice() {
        [one] if !email.is_empty() && one == email => "the Kubernetes user named by the owner's email".into(),
        [one] if !email.is_empty() && one.ends_with(email) => {
            format!("the Kubernetes user {} followed by the owner's email", code(&one[..one.len() - email.len()]))
        }
        [] => "no Kubernetes user".into(),
        _ => subjects.iter().map(|s| code(s)).collect::<Vec<_>>().join(", "),
    }
}

const EXEC_CAVEAT: &str = "RBAC cannot limit exec to one container: `kubectl exec --container tailscale` reaches the tailscale sidecar too, and with its token the Secret that holds the box's tailnet node key. Whoever has the owner's Kubernetes credentials can take over the box's tailnet identity.";
const EXEC_HELP: &str = "to keep the tailnet identity out of reach, leave `exec` out of devbox.toml's `[owners] allow`: SSH over the tailnet already gives a shell in the box's own container";

/// The box goes away or is stopped in Git: those risks say what the owner loses.
fn box_goes(owner: &str, before: &Resources, after: &Resources) -> bool {
    let statefulset = |set: &Resources| set.values().find(|r| r.kind == "StatefulSet" && r.owner == owner).map(|r| r.id.clone());
    match (statefulset(before), statefulset(after)) {
        (Some(id), None) => !after.contains_key(&id),
        (_, Some(id)) => after.get(&id).and_then(|r| spec(r, "replicas")).and_then(Value::as_u64) == Some(0),
        (None, None) => false,
    }
}

pub(super) fn access(before: &Resources, after: &Resources) -> Vec<Risk> {
    // Role and RoleBinding by owner, on each side.
    type Pair<'a> = (Option<&'a Resource>, Option<&'a Resource>);
    let mut old: BTreeMap<&str, Pair<'_>> = BTreeMap::new();
    let mut new: BTreeMap<&str, Pair<'_>> = BTreeMap::new();
    for (set, sides) in [(before, &mut old), (after, &mut new)] {
        for resource in set.values() {
            if is_owner_object(resource, "Role") {
                sides.entry(resource.owner.as_str()).or_default().0 = Some(resource);
            } else if is_owner_object(resource, "RoleBinding") {
                sides.entry(resource.owner.as_str()).or_default().1 = Some(resource);
            }
        }
    }
    let owners: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    let mut risks = Vec::new();
    for owner in owners {
        let ((old_role, old_binding), (new_role, new_binding)) =
            (old.get(owner).copied().unwrap_or_default(), new.get(owner).copied().unwrap_or_default());
        match (old_role, new_role) {
            (None, Some(role)) => {
                let can = abilities(role);
                let mut risk =
                    Risk::new(Kind::OwnerAccessGranted, role, format!("the owner gets kubectl access to the box: {}", describe(&can)))
                        .detail(format!(
                            "A new Role is bound to {}: whoever the cluster authenticates under that name can do this, as themselves.",
                            who(new_binding)
                        ))
                        .detail(scope_detail(role))
                        .fact("to", can.join(","))
                        .fact("subject", new_binding.map(|b| people(b).join(",")).unwrap_or_default());
                if can.iter().any(|c| c == "exec") {
                    risk = risk.detail(EXEC_CAVEAT).help(EXEC_HELP);
                }
                risks.push(risk);
            }
            (Some(role), None) if !box_goes(owner, before, after) => {
                let can = abilities(role);
                risks.push(
                    Risk::new(Kind::OwnerAccessRemoved, role, format!("the owner loses kubectl access to the box: {}", describe(&can)))
                        .detail("The sync prunes the Role and its RoleBinding. A `kubectl exec` session or log stream already open goes on until it ends: RBAC is checked when a request starts.")
                        .fact("from", can.join(","))
                        .fact("subject", old_binding.map(|b| people(b).join(",")).unwrap_or_default()),
                );
            }
            _ => {
                let (was, is) = (old_role.map(abilities), new_role.map(abilities));
                let (was_bound, is_bound) = (old_binding.map(people), new_binding.map(people));
                let can_changed = matches!((&was, &is), (Some(a), Some(b)) if a != b);
                let who_changed = matches!((&was_bound, &is_bound), (Some(a), Some(b)) if a != b);
                if !can_changed && !who_changed {
                    continue;
                }
                let Some(resource) = new_role.or(new_binding) else { continue };
                let mut changes = Vec::new();
                let mut risk = Risk::new(Kind::OwnerAccessChanged, resource, String::new());
                if let (true, Some(was), Some(is)) = (can_changed, &was, &is) {
                    changes.push(format!("{} → {}", describe(was), describe(is)));
                    risk = risk.fact("from", was.join(",")).fact("to", is.join(","));
                    if let Some(role) = new_role {
                        risk = risk.detail(scope_detail(role));
                    }
                    if is.iter().any(|c| c == "exec") && !was.iter().any(|c| c == "exec") {
                        risk = risk.detail(EXEC_CAVEAT).help(EXEC_HELP);
                    }
                }
                if let (true, Some(was), Some(is)) = (who_changed, &was_bound, &is_bound) {
                    let list = |names: &[String]| {
                        if names.is_empty() { "nobody".to_string() } else { names.iter().map(|n| code(n)).collect::<Vec<_>>().join(", ") }
                    };
                    changes.push(format!("granted to {} instead of {}", list(is), list(was)));
                    risk = risk
                        .fact("subject_from", was.join(","))
                        .fact("subject", is.join(","))
                        .detail("The old Kubernetes user loses the access at once, the new one gets it: check that the new name is the owner's, as the cluster authenticates them.");
                }
                risk.summary = format!("the owner's kubectl access to the box changes: {}", changes.join("; "));
                risks.push(risk);
            }
        }
    }
    risks
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use crate::diff::resource::Resource;
    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{kinds, set, statefulset};

    fn object(kind: &str, owner: &str, body: Value) -> Resource {
        let name = format!("{owner}-owner");
        let mut object = body.as_object().cloned().unwrap();
        object.insert("kind".into(), kind.into());
        object.insert(
            "metadata".into(),
            json!({"name": name, "namespace": "devboxes", "labels": {"app.kubernetes.io/component": "owner"},
                   "annotations": {"devbox-gen.dev/owner": format!("{owner}@example.com")}}),
        );
        Resource {
            id: format!("{kind}/devboxes/{name}"),
            kind: kind.into(),
            namespace: Some("devboxes".into()),
            name: name.clone(),
            path: format!("{owner}/{}-{name}.yaml", kind.to_lowercase()),
            owner: owner.into(),
            text: String::new(),
            object: Some(object),
        }
    }

    fn role(owner: &str, allow: &[&str]) -> Resource {
        let mut rules = Vec::new();
        if allow.contains(&"scale") {
            rules.push(json!({"apiGroups": ["apps"], "resources": ["statefulsets"], "resourceNames": [owner], "verbs": ["get"]}));
            rules.push(json!({"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": [owner], "verbs": ["get", "patch", "update"]}));
        }
        let pod = [format!("{owner}-0")];
        rules.push(json!({"apiGroups": [""], "resources": ["pods"], "resourceNames": pod, "verbs": ["get", "list", "watch"]}));
        if allow.contains(&"logs") {
            rules.push(json!({"apiGroups": [""], "resources": ["pods/log"], "resourceNames": pod, "verbs": ["get"]}));
        }
        if allow.contains(&"exec") {
            rules.push(json!({"apiGroups": [""], "resources": ["pods/exec"], "resourceNames": pod, "verbs": ["create", "get"]}));
        }
        object("Role", owner, json!({"rules": rules}))
    }

    fn binding(owner: &str, user: &str) -> Resource {
        object("RoleBinding", owner, json!({"subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}))
    }

    #[test]
    fn a_grant_names_what_the_owner_may_do_and_the_exec_caveat() {
        let after = set(vec![
            role("a", &["scale", "logs", "exec"]),
            binding("a", "oidc:a@example.com"),
            role("b", &["logs"]),
            binding("b", "b@example.com"),
        ]);
        let risks = classify(&set(vec![]), &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["owner-access-granted", "owner-access-granted"]);
        let a = &risks[0];
        assert_eq!(
            a.summary,
            "the owner gets kubectl access to the box: scale (start and stop it), logs (read them), exec (run commands in it)"
        );
        assert!(a.details[0].contains("bound to the Kubernetes user `oidc:` followed by the owner's email"), "{:?}", a.details);
        assert_eq!(
            a.details[1],
            "It allows `statefulsets` get; `statefulsets/scale` get, patch, update; `pods` get, list, watch; `pods/log` get; `pods/exec` create, get; each rule names this box's own StatefulSet or pod."
        );
        assert!(a.details.iter().any(|d| d.starts_with("RBAC cannot limit exec to one container")), "{:?}", a.details);
        assert_eq!((a.facts["to"].as_str(), a.facts["subject"].as_str()), ("scale,logs,exec", "oidc:a@example.com"));
        let b = &risks[1];
        assert_eq!(b.summary, "the owner gets kubectl access to the box: logs (read them)");
        // A template that grants more says what.
        let mut c = role("c", &["logs"]);
        c.object.as_mut().unwrap()["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
        let risks = classify(&set(vec![]), &set(vec![c]), &BTreeSet::new());
        assert_eq!(risks[0].summary, "the owner gets kubectl access to the box: logs (read them), `secrets: get`");
        assert!(
            risks[0].details[1].ends_with(
                "the rules for `secrets` name no object, so they reach every one in the namespace, other people's boxes included."
            ),
            "{:?}",
            risks[0].details
        );
        assert!(b.details[0].contains("bound to the Kubernetes user named by the owner's email"), "{:?}", b.details);
        assert!(!b.details.iter().any(|d| d.contains("RBAC cannot limit exec")), "no exec, no caveat");
    }

    #[test]
    fn changed_and_removed_access() {
        let before = set(vec![role("a", &["logs"]), binding("a", "a@example.com"), role("b", &["logs"]), binding("b", "b@example.com")]);
        let after = set(vec![role("a", &["logs", "exec"]), binding("a", "a@corp.example.com")]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["owner-access-changed", "owner-access-removed"]);
        assert_eq!(
            risks[0].summary,
            "the owner's kubectl access to the box changes: logs (read them) → logs (read them), exec (run commands in it); granted to `a@corp.example.com` instead of `a@example.com`"
        );
        assert!(risks[0].details.iter().any(|d| d.starts_with("RBAC cannot limit exec")), "exec is new: {:?}", risks[0].details);
        assert_eq!(risks[1].summary, "the owner loses kubectl access to the box: logs (read them)");
        // The box stopped in Git: `box-stopped` says it, not a lost Role.
        let before = set(vec![role("a", &["logs"]), statefulset("a", 1, "i:1", None)]);
        let after = set(vec![statefulset("a", 0, "i:1", None)]);
        assert_eq!(kinds(&classify(&before, &after, &BTreeSet::new())), ["box-stopped"]);
    }
}
