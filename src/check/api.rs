//! What the API server's own validation refuses that no OpenAPI schema says, so that a
//! template's object that `kubernetes-validate` and the typed check pass is not one the cluster
//! then refuses at sync time. The rules are Kubernetes':
//!
//! - label keys and annotation keys are qualified names, label values at most 63 characters
//!   of the same alphabet (k8s.io/apimachinery `pkg/util/validation`: `IsQualifiedName`,
//!   `IsValidLabelValue`; `pkg/api/validation`'s `ValidateAnnotations`);
//! - a workload's selector must match its pod template's labels ("`selector` does not match
//!   template `labels`", kubernetes `pkg/apis/apps/validation`);
//! - container names are DNS labels, unique in the pod, init containers included; a port's
//!   name is an IANA service name, unique in its container (`pkg/apis/core/validation`:
//!   `validateContainers`, `validateContainerPorts`, `IsValidPortName`).

use serde_json::{Map, Value};

use super::{Object, Pointer, kind, pod_metadata, pod_spec};
use crate::validate::{is_dns_label, is_dns_subdomain};

/// The kinds whose `spec.selector` must select their own pods.
const SELECTING_WORKLOADS: &[&str] = &["StatefulSet", "Deployment", "DaemonSet", "ReplicaSet"];

pub(super) fn problems(object: &Object) -> Vec<String> {
    let mut problems = Vec::new();
    let metadata = object.get("metadata");
    let template = pod_metadata(object);
    for (place, meta) in [("metadata", metadata), ("the pod template's metadata", template)] {
        let Some(meta) = meta else { continue };
        if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
            problems.extend(label_problems(place, labels));
        }
        if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
            for key in annotations.keys() {
                if let Err(why) = qualified_name(key) {
                    problems.push(format!("{place}: annotation key `{}` {why}", key.escape_debug()));
                }
            }
        }
    }
    if SELECTING_WORKLOADS.contains(&kind(object)) {
        problems.extend(selector_problems(object.at("/spec/selector/matchLabels"), template.and_then(|t| t.get("labels"))));
    }
    if let Some(pod) = pod_spec(object) {
        problems.extend(container_problems(pod));
    }
    problems
}

fn label_problems(place: &str, labels: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in labels {
        if let Err(why) = qualified_name(key) {
            problems.push(format!("{place}: label key `{}` {why}", key.escape_debug()));
        }
        let value = value.as_str().unwrap_or_default();
        if let Err(why) = label_value(value) {
            problems.push(format!("{place}: the value `{}` of label `{key}` {why}", value.escape_debug()));
        }
    }
    problems
}

/// The API server refuses a workload whose pods its own selector does not select: every
/// `matchLabels` pair must be among the pod template's labels.
fn selector_problems(selector: Option<&Value>, template_labels: Option<&Value>) -> Vec<String> {
    let Some(selector) = selector.and_then(Value::as_object) else { return Vec::new() };
    let missing: Vec<String> = selector
        .iter()
        .filter(|(key, value)| template_labels.and_then(|labels| labels.get(key.as_str())) != Some(*value))
        .map(|(key, value)| format!("`{key}: {}`", value.as_str().unwrap_or_default()))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "spec.selector does not match the pod template's labels, which the API server refuses: the pods lack {}",
        missing.join(", ")
    )]
}

fn container_problems(pod: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    let containers = ["initContainers", "containers"].into_iter().filter_map(|list| pod.get(list).and_then(Value::as_array)).flatten();
    for container in containers {
        let name = container.get("name").and_then(Value::as_str).unwrap_or_default();
        if !is_dns_label(name) {
            problems.push(format!(
                "container name `{}` is not a DNS label (lowercase letters, digits and `-`, at most 63)",
                name.escape_debug()
            ));
        } else if !names.insert(name) {
            problems.push(format!("two containers of the pod are named `{name}`"));
        }
        let mut ports = std::collections::HashSet::new();
        for port in container.get("ports").and_then(Value::as_array).into_iter().flatten() {
            let Some(port_name) = port.get("name").and_then(Value::as_str) else { continue };
            if !is_port_name(port_name) {
                problems.push(format!(
                    "container `{name}`: port name `{}` is not an IANA service name (at most 15 lowercase letters, digits and single `-`, with a letter, not at either end)",
                    port_name.escape_debug()
                ));
            } else if !ports.insert(port_name) {
                problems.push(format!("container `{name}`: two ports are named `{port_name}`"));
            }
        }
    }
    problems
}

/// `[prefix/]name`: a DNS subdomain of at most 253 characters, then a name of at most 63
/// letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit.
fn qualified_name(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|prefix| !is_dns_subdomain(prefix)) {
        return Err("has a prefix that is not a DNS subdomain");
    }
    if name.is_empty() || name.len() > 63 || !name_characters(name) {
        return Err(
            "is not a qualified name (at most 63 letters, digits, `-`, `_`, `.`, beginning and ending with a letter or digit, after an optional DNS prefix and `/`)",
        );
    }
    Ok(())
}

/// Empty, or a name of at most 63 characters as in [`qualified_name`].
fn label_value(value: &str) -> Result<(), &'static str> {
    if value.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !value.is_empty() && !name_characters(value) {
        return Err("is not a label value (letters, digits, `-`, `_`, `.`, beginning and ending with a letter or digit)");
    }
    Ok(())
}

fn name_characters(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_alphanumeric();
    bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// IANA_SVC_NAME (RFC 6335): at most 15 lowercase letters, digits and `-`, with at least one
/// letter, no `-` at either end and none doubled.
fn is_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Object {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn qualified_names_and_label_values_as_apimachinery_has_them() {
        for ok in ["app.kubernetes.io/name", "a", "A_b.c-d", "example.com/x", &"a".repeat(63)] {
            assert_eq!(qualified_name(ok), Ok(()), "{ok}");
        }
        for bad in ["bad key!", "/bad", "-a", "a-", "Example.com/x", "a/b/c", "", &"a".repeat(64)] {
            assert!(qualified_name(bad).is_err(), "{bad}");
        }
        for ok in ["", "devbox", "v1.2_3", &"a".repeat(63)] {
            assert_eq!(label_value(ok), Ok(()), "{ok}");
        }
        for bad in ["has space", "-x", "x.", &"a".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names_are_iana_service_names() {
        for ok in ["ssh", "ts-health", "wireguard", "a1", &"a".repeat(15)] {
            assert!(is_port_name(ok), "{ok}");
        }
        for bad in ["", "123", "Ssh", "-ssh", "ssh-", "t--h", "under_score", &"a".repeat(16)] {
            assert!(!is_port_name(bad), "{bad}");
        }
    }

    #[test]
    fn what_the_api_server_refuses_of_a_workload() {
        let set = object(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "a", "labels": {"bad key!": "x", "ok": "has space"}, "annotations": {"/bad": ""}},
            "spec": {
                "selector": {"matchLabels": {"app": "a", "tier": "box"}},
                "template": {
                    "metadata": {"labels": {"app": "a", "long": "x".repeat(64)}},
                    "spec": {
                        "initContainers": [{"name": "box"}],
                        "containers": [
                            {"name": "box", "ports": [{"name": "ssh"}, {"name": "ssh"}]},
                            {"name": "Dev_Box", "ports": [{"name": "way-too-long-port-name"}]},
                        ],
                    },
                },
            },
        }));
        assert_eq!(
            problems(&set),
            [
                "metadata: label key `bad key!` is not a qualified name (at most 63 letters, digits, `-`, `_`, `.`, beginning and ending with a letter or digit, after an optional DNS prefix and `/`)",
                "metadata: the value `has space` of label `ok` is not a label value (letters, digits, `-`, `_`, `.`, beginning and ending with a letter or digit)",
                "metadata: annotation key `/bad` has a prefix that is not a DNS subdomain",
                "the pod template's metadata: the value `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx` of label `long` is longer than 63 characters",
                "spec.selector does not match the pod template's labels, which the API server refuses: the pods lack `tier: box`",
                "two containers of the pod are named `box`",
                "container `box`: two ports are named `ssh`",
                "container name `Dev_Box` is not a DNS label (lowercase letters, digits and `-`, at most 63)",
                "container `Dev_Box`: port name `way-too-long-port-name` is not an IANA service name (at most 15 lowercase letters, digits and single `-`, with a letter, not at either end)",
            ]
        );
    }
}
