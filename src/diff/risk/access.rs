//! Access risks of SSH: keys in a box's authorized keys that can now log in, or no longer can.
//! (The tailnet's are in `tailnet`.)

use std::collections::BTreeSet;

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
