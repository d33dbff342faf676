//! What the commands read back from a rendered box: the settings the *template* decides, which
//! a custom template may change, so no command may assume them.
//!
//! - sshd's port: the `containerPort` named `ssh` in the box's StatefulSet (the embedded
//!   template's `sshPort`), for `ssh-config`;
//! - where the pod mounts a Secret and under which keys it reads it (a secret volume's
//!   `items`), and which key of the tailscale auth key Secret `TS_AUTHKEY` points at, for
//!   `secrets`;
//! - what a pod requests ([`pod_requests`]), for `[quota]` and `diff`'s cost;
//! - which of its own annotations or labels a pod passes to a variable
//!   ([`pod_metadata_reference`]), for the check stage and `diff`'s tailnet risks.
//!
//! Everything is looked up in the pod templates of the bundle's StatefulSets, the devbox
//! container first.

use serde_json::Value;

use super::Object;
use crate::quantity::Quantity;

/// What a pod reserves on its node, as the scheduler and a ResourceQuota count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PodRequests {
    pub cpu: Quantity,
    pub memory: Quantity,
    /// `nvidia.com/gpu`.
    pub gpus: Quantity,
}

/// A pod spec's effective requests: the sum of its containers (sidecars, init containers with
/// `restartPolicy: Always`, included, as they run alongside), or the largest other init
/// container if that is more; a container without requests requests its limits.
pub(crate) fn pod_requests(pod: &Value) -> PodRequests {
    let zero = Quantity::ZERO;
    let (mut running, mut init) = ([zero; 3], [zero; 3]);
    for (list, alongside) in [("containers", true), ("initContainers", false)] {
        for container in pod.get(list).and_then(Value::as_array).into_iter().flatten() {
            let resources = container.get("resources");
            let reserved = |name: &str| {
                let stated = |section: &str| resources?.get(section)?.get(name);
                stated("requests").or_else(|| stated("limits")).map_or(zero, quantity)
            };
            let own = [reserved("cpu"), reserved("memory"), reserved("nvidia.com/gpu")];
            if alongside || container.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
                for (total, add) in running.iter_mut().zip(own) {
                    *total = *total + add;
                }
            } else {
                for (largest, one) in init.iter_mut().zip(own) {
                    *largest = (*largest).max(one);
                }
            }
        }
    }
    let [cpu, memory, gpus] = [0, 1, 2].map(|i| running[i].max(init[i]));
    PodRequests { cpu, memory, gpus }
}

/// The pod's own value an environment variable's `fieldRef` names when it is one of its
/// annotations or labels (`metadata.annotations['KEY']`): the pod template's `metadata` map
/// (`annotations` or `labels`) and the key, as the kubelet resolves it.
pub(crate) fn pod_metadata_reference(var: &Value) -> Option<(&'static str, &str)> {
    let path = var.get("valueFrom")?.get("fieldRef")?.get("fieldPath")?.as_str()?;
    let (field, key) = path.strip_suffix("']")?.split_once("['")?;
    match field {
        "metadata.annotations" => Some(("annotations", key)),
        "metadata.labels" => Some(("labels", key)),
        _ => None,
    }
}

/// A quantity as YAML gives it: a string (`"500m"`) or a number (`2`).
pub(crate) fn quantity(value: &Value) -> Quantity {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Quantity::ZERO,
    };
    Quantity::parse(&text).unwrap_or(Quantity::ZERO)
}

/// The pod specs of the StatefulSets among `objects`.
fn pod_specs(objects: &[Object]) -> impl Iterator<Item = &Value> {
    objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("StatefulSet"))
        .filter_map(|o| o.get("spec")?.get("template")?.get("spec"))
}

/// A pod's containers, the one named `devbox` first.
fn containers(pod: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = pod.get("containers").and_then(Value::as_array).map(|c| c.iter().collect()).unwrap_or_default();
    all.sort_by_key(|c| c.get("name").and_then(Value::as_str) != Some("devbox"));
    all
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// sshd's port: the first container port named `ssh` (the devbox container's first).
pub(crate) fn ssh_port(objects: &[Object]) -> Option<u16> {
    pod_specs(objects)
        .flat_map(containers)
        .flat_map(|c| list(c, "ports"))
        .find(|p| text(p, "name") == Some("ssh"))
        .and_then(|p| p.get("containerPort")?.as_u64())
        .and_then(|port| u16::try_from(port).ok())
}

/// How the pod sees one Secret: where a container mounts it, and which keys land where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretMount {
    /// The volume's name in the pod.
    pub volume: String,
    /// Where the first container that mounts the whole volume has it (the devbox container's
    /// mount first).
    pub mount_path: String,
    /// The volume's `items` as `(key, path)`; empty: every key, as a file of its own name.
    items: Vec<(String, String)>,
}

impl SecretMount {
    /// The key of the Secret that the pod finds at `path` under the mount: the item projected
    /// there, or `path` itself when the volume projects every key. `None`: the volume's items
    /// leave that path out.
    pub(crate) fn key_at(&self, path: &str) -> Option<String> {
        if self.items.is_empty() {
            return Some(path.to_string());
        }
        self.items.iter().find(|(_, p)| p == path).map(|(key, _)| key.clone())
    }

    /// The path under the mount that the absolute `file` names, if it is under it.
    fn path_of<'a>(&self, file: &'a str) -> Option<&'a str> {
        file.strip_prefix(self.mount_path.trim_end_matches('/'))?.strip_prefix('/').filter(|p| !p.is_empty())
    }
}

/// Where the pod mounts Secret `secret` (a `secret` volume, mounted whole by a container).
pub(crate) fn secret_mount(objects: &[Object], secret: &str) -> Option<SecretMount> {
    pod_specs(objects).find_map(|pod| {
        let volume = list(pod, "volumes").iter().find(|v| v.get("secret").and_then(|s| text(s, "secretName")) == Some(secret))?;
        let name = text(volume, "name")?;
        let items = volume
            .get("secret")
            .map(|s| list(s, "items"))
            .unwrap_or_default()
            .iter()
            .filter_map(|item| Some((text(item, "key")?.to_string(), text(item, "path")?.to_string())))
            .collect();
        let mount_path = containers(pod)
            .into_iter()
            .flat_map(|c| list(c, "volumeMounts"))
            .find(|m| text(m, "name") == Some(name) && m.get("subPath").is_none())
            .and_then(|m| text(m, "mountPath"))?;
        Some(SecretMount { volume: name.to_string(), mount_path: mount_path.to_string(), items })
    })
}

/// The key of Secret `secret` that tailscale reads its auth key from: `TS_AUTHKEY` (the
/// variable tailscale's containerboot reads) as a `secretKeyRef` to it, or as
/// `file:<path>` into a container's mount of it.
pub(crate) fn auth_key_key(objects: &[Object], secret: &str) -> Option<String> {
    let mount = secret_mount(objects, secret);
    pod_specs(objects).flat_map(containers).flat_map(|c| list(c, "env")).filter(|e| text(e, "name") == Some("TS_AUTHKEY")).find_map(|env| {
        if let Some(reference) = env.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
            return (text(reference, "name") == Some(secret)).then(|| text(reference, "key").map(str::to_string)).flatten();
        }
        let file = text(env, "value")?.strip_prefix("file:")?;
        let mount = mount.as_ref()?;
        mount.key_at(mount.path_of(file)?)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn statefulset(pod: Value) -> Vec<Object> {
        let object = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": {"spec": pod}}});
        vec![object.as_object().unwrap().clone()]
    }

    #[test]
    fn the_ssh_port_is_the_devbox_containers_port_named_ssh() {
        let objects = statefulset(json!({"containers": [
            {"name": "sidecar", "ports": [{"name": "ssh", "containerPort": 22}]},
            {"name": "devbox", "ports": [{"name": "jupyter", "containerPort": 8888}, {"name": "ssh", "containerPort": 2022}]},
        ]}));
        assert_eq!(ssh_port(&objects), Some(2022));
        assert_eq!(ssh_port(&statefulset(json!({"containers": [{"name": "devbox"}]}))), None);
        assert_eq!(ssh_port(&[]), None);
    }

    #[test]
    fn secret_keys_follow_the_volume_items() {
        let objects = statefulset(json!({
            "containers": [
                {"name": "devbox", "volumeMounts": [{"name": "key", "mountPath": "/keys"}]},
                {"name": "tailscale",
                 "env": [{"name": "TS_AUTHKEY", "value": "file:/etc/ts/auth"}],
                 "volumeMounts": [{"name": "ts", "mountPath": "/etc/ts/"}]},
            ],
            "volumes": [
                {"name": "key", "secret": {"secretName": "alice-ssh"}},
                {"name": "ts", "secret": {"secretName": "tailscale-auth", "items": [{"key": "authkey", "path": "auth"}]}},
            ],
        }));
        let key = secret_mount(&objects, "alice-ssh").unwrap();
        assert_eq!((key.volume.as_str(), key.mount_path.as_str()), ("key", "/keys"));
        assert_eq!(key.key_at("id_ed25519").as_deref(), Some("id_ed25519"));
        let auth = secret_mount(&objects, "tailscale-auth").unwrap();
        assert_eq!(auth.key_at("auth").as_deref(), Some("authkey"));
        assert_eq!(auth.key_at("other"), None);
        assert_eq!(auth_key_key(&objects, "tailscale-auth").as_deref(), Some("authkey"));
        assert_eq!(secret_mount(&objects, "bob-ssh"), None);
    }

    #[test]
    fn the_auth_key_may_be_a_secret_key_reference() {
        let objects = statefulset(json!({"containers": [{"name": "tailscale", "env": [
            {"name": "TS_AUTHKEY", "valueFrom": {"secretKeyRef": {"name": "ts", "key": "key"}}},
        ]}]}));
        assert_eq!(auth_key_key(&objects, "ts").as_deref(), Some("key"));
        assert_eq!(auth_key_key(&objects, "other"), None);
    }
}
