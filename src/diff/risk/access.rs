//! Access risks of SSH: keys in a box's authorized keys that can now log in, or no longer can;
//! and of the Kubernetes API and network: a binding to a ClusterRole, a NetworkPolicy removed.
//! (The tailnet's are in `tailnet`, the owner's Role in `owner`.)

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Kind, Risk, code, namespace_flag, owner_email};
use crate::diff::resource::{Resource, Resources};

/// One authorized key, as a reviewer recognises it.
#[derive(Clone, Debug)]
struct Key {
    /// What identifies the key: its fingerprint, or the line when it cannot be parsed.
    identity: String,
    comment: String,
    algorithm: String,
}

fn keys(resource: &Resource) -> Vec<Key> {
    let Some(text) = resource.object.as_ref().and_then(|o| o.get("data")?.get("authorized_keys")?.as_str()) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| match crate::authorized_keys::parse(line) {
            Ok(parsed) => {
                let key = &parsed.key;
                Key {
                    identity: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                    comment: key.comment().to_string(),
                    algorithm: key.algorithm().to_string(),
                }
            }
            Err(_) => Key {
                identity: line.to_string(),
                comment: line.rsplit(' ').next().unwrap_or("").to_string(),
                algorithm: "unreadable".into(),
            },
        })
        .collect()
}

fn describe_key(key: &Key) -> String {
    let name = if key.comment.is_empty() { key.identity.as_str() } else { key.comment.as_str() };
    let fingerprint = if key.identity.starts_with("SHA256:") { format!(" {}", code(&key.identity)) } else { String::new() };
    format!("{} ({}{fingerprint})", code(name), key.algorithm.replace('`', "'"))
}

fn key_facts(risk: Risk, key: &Key) -> Risk {
    let risk = risk.fact("comment", key.comment.as_str()).fact("algorithm", key.algorithm.as_str());
    if key.identity.starts_with("SHA256:") { risk.fact("fingerprint", key.identity.as_str()) } else { risk }
}

pub(super) fn authorized_keys(before: &Resources, after: &Resources, unchanged_owners: &BTreeSet<String>) -> Vec<Risk> {
    let mut risks = Vec::new();
    let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for id in ids {
        let (old, new) = (before.get(id), after.get(id));
        let Some(resource) = new.or(old).filter(|r| r.kind == "ConfigMap") else { continue };
        let old_keys = old.map(keys).unwrap_or_default();
        let new_keys = new.map(keys).unwrap_or_default();
        if new.is_none() {
            continue; // the box itself goes away; that risk is told elsewhere
        }
        for key in new_keys.iter().filter(|k| !old_keys.iter().any(|o| o.identity == k.identity)) {
            let owner = new.and_then(owner_email).map_or(String::new(), |e| format!(" Check that it belongs to {}.", code(e)));
            let new_box = !unchanged_owners.contains(&resource.owner) && !before.values().any(|r| r.owner == resource.owner);
            let summary = if new_box { "can log in to the new box" } else { "can now log in" };
            risks.push(
                key_facts(Risk::new(Kind::KeyAdded, resource, format!("SSH key {} {summary}", describe_key(key))), key)
                    .detail(format!("Whoever holds its private key gets a shell on the box, with its home volume and GitHub key.{owner}")),
            );
        }
        for key in old_keys.iter().filter(|k| !new_keys.iter().any(|n| n.identity == k.identity)) {
            risks.push(
                key_facts(Risk::new(Kind::KeyRemoved, resource, format!("SSH key {} can no longer log in", describe_key(key))), key)
                    .detail("The box drops it from its authorized keys without a restart; sessions already open stay open.")
                    .help(format!(
                        "if the key is compromised, end its sessions by restarting the box: `kubectl {}delete pod {}-0`",
                        namespace_flag(resource),
                        resource.owner.replace('`', "'")
                    )),
            );
        }
    }
    risks
}

/// What a binding grants, as compared: its role and its subjects.
fn grant(resource: &Resource) -> (Option<&Value>, Option<&Value>) {
    let object = resource.object.as_ref();
    (object.and_then(|o| o.get("roleRef")), object.and_then(|o| o.get("subjects")))
}

/// `ServiceAccount devboxes/alice`, `User alice@example.com`, `Group ml`, for each subject.
fn subjects(binding: &Resource) -> Vec<String> {
    let listed = binding.object.as_ref().and_then(|o| o.get("subjects")).and_then(Value::as_array).into_iter().flatten();
    listed
        .map(|subject| {
            let field = |name: &str| subject.get(name).and_then(Value::as_str).unwrap_or("");
            let name = match (field("kind"), subject.get("namespace").and_then(Value::as_str).or(binding.namespace.as_deref())) {
                ("ServiceAccount", Some(namespace)) => format!("{namespace}/{}", field("name")),
                _ => field("name").to_string(),
            };
            format!("{} {}", field("kind"), code(&name))
        })
        .collect()
}

/// A binding to a ClusterRole, or a ClusterRoleBinding, that a bundle adds or changes. The
/// bindings devbox-gen generates are to the box's own Roles (the sidecar's, the idle
/// container's, the owner's, told in `owner`), so this one is a template's: it may give a box,
/// or anyone, `cluster-admin`, `admin` or `edit`.
pub(super) fn cluster_role_bindings(before: &Resources, after: &Resources) -> Vec<Risk> {
    let mut risks = Vec::new();
    for (id, new) in after.iter().filter(|(_, r)| r.kind == "RoleBinding" || r.kind == "ClusterRoleBinding") {
        let (role, _) = grant(new);
        let role_kind = role.and_then(|r| r.get("kind")).and_then(Value::as_str);
        if new.kind == "RoleBinding" && role_kind != Some("ClusterRole") {
            continue;
        }
        if before.get(id).is_some_and(|old| grant(old) == grant(new)) {
            continue;
        }
        let role_name = role.and_then(|r| r.get("name")).and_then(Value::as_str).unwrap_or("?");
        let scope = match (&*new.kind, &new.namespace) {
            ("RoleBinding", Some(namespace)) => format!("in namespace {}", code(namespace)),
            _ => "in every namespace of the cluster".to_string(),
        };
        let who = subjects(new);
        let who_text = if who.is_empty() { "no subject".to_string() } else { who.join(", ") };
        let verb = if before.contains_key(id) { "now binds" } else { "binds" };
        risks.push(
            Risk::new(Kind::ClusterRoleBound, new, format!("{} {verb} ClusterRole {} to {who_text}, {scope}", new.kind, code(role_name)))
                .fact("role", role_name)
                .fact("subjects", who.iter().map(|s| s.replace('`', "")).collect::<Vec<_>>().join(", "))
                .fact("scope", if new.kind == "ClusterRoleBinding" { "cluster" } else { "namespace" })
                .detail(format!(
                    "Whoever holds these identities can do what the ClusterRole allows {scope}; a box's ServiceAccount is whatever runs in the box, the person's code included. devbox-gen's own bindings are to the box's Roles only."
                ))
                .help(format!("check what `kubectl describe clusterrole {role_name}` allows, and that each subject should have it {scope}")),
        );
    }
    risks
}

/// A box's NetworkPolicy that leaves while the box stays: its pod is then open to every pod of
/// the cluster, and can reach what the policy kept it from (with the embedded template, the
/// cloud metadata server).
pub(super) fn network_policies_removed(before: &Resources, after: &Resources) -> Vec<Risk> {
    let leaves = |owner: &str| {
        let statefulset = |r: &&Resource| r.owner == owner && r.kind == "StatefulSet";
        before.values().any(|r| statefulset(&r)) && !after.values().any(|r| statefulset(&r))
    };
    before
        .iter()
        .filter(|(id, old)| old.kind == "NetworkPolicy" && !after.contains_key(*id) && !leaves(&old.owner))
        .map(|(_, old)| {
            Risk::new(Kind::NetworkPolicyRemoved, old, format!("NetworkPolicy {} is removed: the box's network is no longer restricted", code(&old.name)))
                .detail("Every pod of the cluster can reach the box's ports, and the box can reach what the policy blocked: with the embedded template, the cloud metadata server, which without Workload Identity hands any pod the node's credentials.")
                .help("if that is not meant, keep the policy in the template (the library's `networkPolicy`)")
        })
        .collect()
}
