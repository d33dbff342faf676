//! Risks of the tailnet side of a box: what tailscale does, not what Kubernetes does, when the
//! sidecar's state or tags change or the box goes away.
//!
//! The facts these rest on are tailscale's, read from containerboot (v1.80): it logs a node in
//! only when its state holds no node key (`TS_AUTH_ONCE`), and applies `TS_EXTRA_ARGS`
//! (`--advertise-tags`) only at that login; a node that logs in again under a hostname still
//! taken in the tailnet is renamed `NAME-1` (tailscale/tailscale#2076); nothing logs a node out
//! when its pod stops, so it stays in the tailnet's machine list until someone removes it.

use serde_json::Value;

use super::{Kind, Risk, code, containers, namespace_flag, pod, spec};
use crate::diff::resource::Resource;

/// The ConfigMap key the default template reads `TS_EXTRA_ARGS` from.
const EXTRA_ARGS_KEY: &str = "tailscale-extra-args";

/// The tailscale container of a pod: the one that sets `TS_HOSTNAME`.
fn sidecar(pod: &Value) -> Option<&Value> {
    containers(pod).find(|c| env(c, "TS_HOSTNAME").is_some())
}

/// A literal environment variable of a container.
fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    env_var(container, name)?.get("value")?.as_str()
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container.get("env")?.as_array()?.iter().find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

/// An environment variable of a pod template's container as the kubelet sets it: its literal
/// value, or the pod's own annotation or label that a `fieldRef` names
/// (`metadata.annotations['KEY']`, as the embedded template passes `TS_KUBE_SECRET`).
fn resolved_env<'a>(template: &'a Value, container: &'a Value, name: &str) -> Option<&'a str> {
    let var = env_var(container, name)?;
    if let Some(value) = var.get("value") {
        return value.as_str();
    }
    let (map, key) = crate::render::contract::pod_metadata_reference(var)?;
    template.get("metadata")?.get(map)?.get(key)?.as_str()
}

/// The tailnet hostname a StatefulSet's box has.
pub(super) fn hostname(statefulset: &Resource) -> Option<&str> {
    env(sidecar(pod(statefulset)?)?, "TS_HOSTNAME")
}

/// The Secret tailscaled keeps its node key in (`TS_KUBE_SECRET`), if it keeps it in one.
fn state_secret(statefulset: &Resource) -> Option<&str> {
    let template = spec(statefulset, "template")?;
    resolved_env(template, sidecar(template.get("spec")?)?, "TS_KUBE_SECRET").filter(|s| !s.is_empty())
}

/// Where tailscaled keeps its node key, in words: `Secret 'x'`, or the volume it mounts.
fn state_location(statefulset: &Resource) -> Option<String> {
    if let Some(secret) = state_secret(statefulset) {
        return Some(format!("Secret {}", code(secret)));
    }
    let container = sidecar(pod(statefulset)?)?;
    let dir = env(container, "TS_STATE_DIR")?;
    let mounts = container.get("volumeMounts")?.as_array()?;
    let mount = mounts.iter().find(|m| m.get("mountPath").and_then(Value::as_str) == Some(dir))?;
    let volume = mount.get("name").and_then(Value::as_str).unwrap_or("?");
    Some(match mount.get("subPath").and_then(Value::as_str) {
        Some(sub) => format!("volume {}, directory {}", code(volume), code(sub)),
        None => format!("volume {}", code(volume)),
    })
}

/// How to find the box's device id, which the tailscale API and admin console go by:
/// containerboot records it as `device_id` in the state Secret.
fn device_id_help(resource: &Resource, state_secret: &str) -> String {
    format!(
        "its device id, while the state Secret still exists: `kubectl {}get secret {} --output jsonpath='{{.data.device_id}}' | base64 -d`",
        namespace_flag(resource),
        state_secret.replace('`', "'")
    )
}

/// The box's tailnet state moves (from the home volume into a Secret, say): the sidecar starts
/// without its node key and logs in as a new machine.
pub(super) fn state_moved(old: &Resource, new: &Resource) -> Option<Risk> {
    let (from, to) = (state_location(old)?, state_location(new)?);
    if from == to {
        return None;
    }
    let host = hostname(new).unwrap_or("the box");
    Some(
        Risk::new(Kind::TailnetNodeReplaced, new, format!("the tailnet state moves from {from} to {to}: the box joins the tailnet as a new machine"))
            .fact("from", from.replace('`', ""))
            .fact("to", to.replace('`', ""))
            .fact("hostname", host)
            .detail(format!(
                "The sidecar starts without the old node key and logs in anew with the auth key. While the old machine {} is still in the tailnet, the new one is named {} and `ssh {host}` reaches the old, offline one (tailscale/tailscale#2076).",
                code(host),
                code(&format!("{host}-1")),
            ))
            .help("before this syncs, make sure the auth key Secret holds a valid, reusable key: the box needs it once more")
            .help(format!(
                "once the new pod is on the tailnet, remove the old machine {} (tailscale admin console → Machines → Remove, or `DELETE /api/v2/device/DEVICE_ID`), then rename {} back to {} (Machines → Edit machine name)",
                code(host),
                code(&format!("{host}-1")),
                code(host)
            ))
            .help("not earlier: a pod whose machine is removed logs in again with the auth key, so the old pod would take the name back"),
    )
}

/// The box's tailnet name changes. With `TS_AUTH_ONCE`, containerboot runs `tailscale set
/// --hostname` once the node is up (cmd/containerboot/tailscaled.go, `tailscaleSet`): the same
/// machine is renamed, and every `ssh OLD` and VS Code host entry stops resolving.
pub(super) fn hostname_changed(old: &Resource, new: &Resource) -> Option<Risk> {
    let (from, to) = (hostname(old)?, hostname(new)?);
    if from == to {
        return None;
    }
    Some(
        Risk::new(Kind::HostnameChanged, new, format!("the box's ssh host name changes from {} to {}", code(from), code(to)))
            .fact("from", from)
            .fact("to", to)
            .detail(format!(
                "The pod restarts and its tailnet machine is renamed {}: `ssh {from}`, VS Code's Remote-SSH host {} and bookmarked Jupyter URLs stop working; if another machine already has that name, the box gets {}.",
                code(to),
                code(from),
                code(&format!("{to}-1"))
            ))
            .help(format!(
                "tell {}: replace {} with {} in `~/.ssh/config` (or run `devbox-gen ssh-config {}` again) and in VS Code's remote hosts",
                code(&new.owner),
                code(from),
                code(to),
                new.owner.replace('`', "'")
            )),
    )
}

/// The tags a box advertises, from the ConfigMap key or the sidecar's literal `TS_EXTRA_ARGS`.
fn advertised_tags(resource: &Resource) -> Option<String> {
    let extra_args = match resource.kind.as_str() {
        "ConfigMap" => resource.object.as_ref()?.get("data")?.get(EXTRA_ARGS_KEY)?.as_str()?,
        "StatefulSet" => env(sidecar(pod(resource)?)?, "TS_EXTRA_ARGS")?,
        _ => return None,
    };
    let tags = extra_args.split_whitespace().find_map(|arg| arg.strip_prefix("--advertise-tags="));
    Some(tags.unwrap_or("").to_string())
}

/// The tags change in Git, but not on the running node: tailscale applies them at first login.
pub(super) fn tags_changed(old: &Resource, new: &Resource) -> Option<Risk> {
    let (from, to) = (advertised_tags(old)?, advertised_tags(new)?);
    if from == to {
        return None;
    }
    let shown = |tags: &str| if tags.is_empty() { "none".to_string() } else { code(tags) };
    Some(
        Risk::new(
            Kind::TailnetTagsNotApplied,
            new,
            format!("the tailnet tags change from {} to {}, but the box's machine keeps its tags", shown(&from), shown(&to)),
        )
        .fact("from", from.as_str())
        .fact("to", to.as_str())
        .detail("tailscale applies `--advertise-tags` only when a machine first logs in, and the box's machine is logged in already: nothing restarts and the ACLs keep seeing the old tags. A new box, or one whose tailnet state is reset, gets the new ones.")
        .help("retag the running machine in the tailscale admin console (Machines → the box's machine → Edit ACL tags), or with the API: `POST /api/v2/device/DEVICE_ID/tags`")
        // The ConfigMap does not name the state Secret; this is the embedded template's name.
        .help(device_id_help(new, &crate::defaults::tailnet_state_secret(&new.owner))),
    )
}

/// What becomes of the box's machine when the box is archived or removed; `pruned` says
/// whether the sync deletes its objects (not a bundle Argo CD delivered and that left out/).
pub(super) fn machine_left_behind(old: &Resource, risk: Risk, pruned: bool) -> Risk {
    let Some(host) = hostname(old) else { return risk };
    let secret = state_secret(old);
    let detail = match (pruned, secret.is_some()) {
        (false, _) => format!(
            "Nothing is pruned: the machine {} stays in the tailnet as it is, online while the pod runs, with its node key in place. Once its objects are deleted by hand, it stays in the tailnet's machine list, offline, until someone removes it.",
            code(host)
        ),
        (true, has_secret) => format!(
            "{}; but the machine {} stays in the tailnet's machine list, offline, until someone removes it (stopping a pod logs nothing out).",
            if has_secret {
                "Its node key goes with the pruned state Secret, so nothing can use that identity again"
            } else {
                "Its node key stays where the sidecar kept it"
            },
            code(host)
        ),
    };
    let risk = risk.fact("hostname", host).detail(detail).help(format!(
        "remove the machine: tailscale admin console → Machines → {} → Remove (or `DELETE /api/v2/device/DEVICE_ID`)",
        code(host)
    ));
    match secret {
        Some(secret) => risk.help(device_id_help(old, secret)),
        None => risk,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn resource(kind: &str, name: &str, object: Value) -> Resource {
        let mut object = object.as_object().cloned().unwrap();
        object.insert("kind".into(), kind.into());
        object.insert("metadata".into(), json!({"name": name, "namespace": "devboxes"}));
        Resource {
            id: format!("{kind}/devboxes/{name}"),
            kind: kind.into(),
            namespace: Some("devboxes".into()),
            name: name.into(),
            path: format!("alice/{}-{name}.yaml", kind.to_lowercase()),
            owner: "alice".into(),
            text: String::new(),
            object: Some(object),
        }
    }

    fn statefulset(env: Value, mounts: Value) -> Resource {
        let sidecar = json!({"name": "tailscale", "env": env, "volumeMounts": mounts});
        resource("StatefulSet", "alice", json!({"spec": {"template": {"spec": {"containers": [{"name": "devbox"}, sidecar]}}}}))
    }

    fn on_home_volume() -> Resource {
        statefulset(
            json!([{"name": "TS_HOSTNAME", "value": "alice-devbox"}, {"name": "TS_STATE_DIR", "value": "/var/lib/tailscale"},
                   {"name": "TS_EXTRA_ARGS", "value": "--advertise-tags=tag:devbox"}]),
            json!([{"name": "home", "mountPath": "/var/lib/tailscale", "subPath": ".tailscale"}]),
        )
    }

    fn in_secret() -> Resource {
        statefulset(
            json!([{"name": "TS_HOSTNAME", "value": "alice-devbox"}, {"name": "TS_KUBE_SECRET", "value": "alice-tailnet"}]),
            json!([]),
        )
    }

    #[test]
    fn moving_the_state_means_a_new_machine_and_says_to_remove_the_old_one_first() {
        let risk = state_moved(&on_home_volume(), &in_secret()).expect("a risk");
        assert_eq!(risk.kind, Kind::TailnetNodeReplaced);
        assert_eq!(risk.facts["from"], "volume home, directory .tailscale");
        assert_eq!(risk.facts["to"], "Secret alice-tailnet");
        assert!(risk.details[0].contains("the new one is named `alice-devbox-1`"), "{:?}", risk.details);
        assert!(risk.help[1].starts_with("once the new pod is on the tailnet, remove the old machine `alice-devbox`"), "{:?}", risk.help);
        assert!(risk.help[1].ends_with("rename `alice-devbox-1` back to `alice-devbox` (Machines → Edit machine name)"), "{:?}", risk.help);
        assert!(state_moved(&in_secret(), &in_secret()).is_none(), "no move, no risk");
    }

    /// As the embedded template passes it: from the pod's own annotation, which the kubelet
    /// resolves (and a literal, as earlier versions wrote it, is the same Secret).
    #[test]
    fn the_state_secret_named_by_the_pods_annotation_is_the_same_secret() {
        let by_annotation = resource(
            "StatefulSet",
            "alice",
            json!({"spec": {"template": {
                "metadata": {"annotations": {"devbox-gen.dev/tailnet-state": "alice-tailnet"}},
                "spec": {"containers": [{"name": "tailscale", "env": [
                    {"name": "TS_HOSTNAME", "value": "alice-devbox"},
                    {"name": "TS_KUBE_SECRET", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['devbox-gen.dev/tailnet-state']"}}},
                ]}]},
            }}}),
        );
        assert_eq!(state_secret(&by_annotation), Some("alice-tailnet"));
        assert!(state_moved(&in_secret(), &by_annotation).is_none(), "a literal and the annotation name the same Secret");
        let moved = state_moved(&on_home_volume(), &by_annotation).expect("a risk");
        assert_eq!(moved.facts["to"], "Secret alice-tailnet");
        let mut unannotated = by_annotation.clone();
        unannotated.object.as_mut().unwrap()["spec"]["template"]["metadata"] = json!({});
        assert_eq!(state_secret(&unannotated), None, "an annotation that is not there sets the variable to nothing");
    }

    #[test]
    fn changed_tags_are_not_applied_to_a_logged_in_machine() {
        let config = |args: &str| resource("ConfigMap", "alice-devbox", json!({"data": {EXTRA_ARGS_KEY: args}}));
        let risk = tags_changed(&config("--advertise-tags=tag:devbox"), &config("--advertise-tags=tag:devbox,tag:gpu")).expect("a risk");
        assert_eq!(risk.kind, Kind::TailnetTagsNotApplied);
        assert_eq!((risk.facts["from"].as_str(), risk.facts["to"].as_str()), ("tag:devbox", "tag:devbox,tag:gpu"));
        assert!(risk.summary.contains("keeps its tags"), "{}", risk.summary);
        let removed = tags_changed(&config("--advertise-tags=tag:devbox"), &config("")).expect("removing every tag is a change");
        assert!(removed.summary.contains("to none"), "{}", removed.summary);
        assert!(tags_changed(&config("--advertise-tags=tag:a"), &config("--advertise-tags=tag:a")).is_none());
        // The older layout, tags in the sidecar's own environment, is read too.
        assert_eq!(advertised_tags(&on_home_volume()).as_deref(), Some("tag:devbox"));
    }

    #[test]
    fn an_archived_box_leaves_its_machine_in_the_tailnet() {
        let base = Risk::new(Kind::BoxArchived, &in_secret(), "archived".into());
        let risk = machine_left_behind(&in_secret(), base.clone(), true);
        assert!(risk.details.iter().any(|d| d.starts_with("Its node key goes with the pruned state Secret")), "{:?}", risk.details);
        assert!(risk.help.iter().any(|h| h.contains("`alice-devbox` → Remove")), "{:?}", risk.help);
        let legacy = machine_left_behind(&on_home_volume(), Risk::new(Kind::BoxArchived, &on_home_volume(), "archived".into()), true);
        assert!(legacy.details.iter().any(|d| d.starts_with("Its node key stays where the sidecar kept it")), "{:?}", legacy.details);
        // Removed under Argo CD, nothing is pruned: the machine stays online while the pod runs.
        let kept = machine_left_behind(&in_secret(), base, false);
        assert!(
            kept.details.iter().any(|d| d.starts_with("Nothing is pruned: the machine `alice-devbox` stays in the tailnet as it is")),
            "{:?}",
            kept.details
        );
        assert!(!kept.details.iter().any(|d| d.contains("goes with the pruned state Secret")), "{:?}", kept.details);
    }
}
