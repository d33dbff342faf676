//! The files of an `out/` tree, read back as Kubernetes objects and keyed by what the cluster
//! knows them by (`Kind/namespace/name`), not by file path: a bundle that moves in `out/` (a user
//! moving to another cluster's directory) is the same objects, and the diff must say so.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::emit::{self, OutTree};
use crate::render::Object;

/// One file of `out/`, parsed.
#[derive(Clone, Debug)]
pub(crate) struct Resource {
    /// `StatefulSet/devboxes/alice`; see [`crate::check::object_id`].
    pub id: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// `out/`-relative path: `alice/statefulset-alice.yaml`.
    pub path: String,
    /// The user (or other source) the file belongs to, from its header.
    pub owner: String,
    /// The whole file, header included, so line numbers in the diff are the file's.
    pub text: String,
    /// `None` when the file is not YAML (a hand-edited committed file, say); it is still
    /// compared, as text.
    pub object: Option<Object>,
}

/// Every resource of a tree, by id.
pub(crate) type Resources = BTreeMap<String, Resource>;

/// The content-addressed objects of `new` that replace one of `old` (new id → old id): the
/// shared scripts ConfigMap, whose name ends in the hash of its content, so a one-line script
/// change is a new object under a new name. Paired when exactly one object of the same kind,
/// namespace, directory and name before the hash was removed and one added, so the reviewer
/// sees the line that changed rather than 1,500 lines removed and 1,500 added. (The cluster
/// keeps the old version: nothing prunes it.)
pub(crate) fn successors(old: &Resources, new: &Resources) -> BTreeMap<String, String> {
    fn family(resource: &Resource) -> Option<(String, &str, Option<&str>)> {
        let object = resource.object.as_ref()?;
        if !crate::render::is_shared(object) {
            return None;
        }
        let (stem, hash) = resource.name.rsplit_once('-')?;
        let directory = resource.path.rsplit_once('/').map_or("", |(dir, _)| dir);
        (hash.len() == crate::check::CONTENT_ADDRESS_LEN && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| (format!("{}/{stem}", resource.kind), directory, resource.namespace.as_deref()))
    }
    let mut removed: BTreeMap<_, Vec<&String>> = BTreeMap::new();
    for (id, resource) in old.iter().filter(|(id, _)| !new.contains_key(*id)) {
        if let Some(key) = family(resource) {
            removed.entry(key).or_default().push(id);
        }
    }
    let mut added: BTreeMap<_, Vec<&String>> = BTreeMap::new();
    for (id, resource) in new.iter().filter(|(id, _)| !old.contains_key(*id)) {
        if let Some(key) = family(resource) {
            added.entry(key).or_default().push(id);
        }
    }
    added
        .into_iter()
        .filter_map(|(key, new_ids)| match (new_ids.as_slice(), removed.get(&key).map(Vec::as_slice)) {
            ([new_id], Some([old_id])) => Some(((*new_id).clone(), (*old_id).clone())),
            _ => None,
        })
        .collect()
}

/// Reads a tree. A bundle's `kustomization.yaml` has no name of its own: it is keyed by its
/// owner (`Kustomization/alice`). The delivery objects that exist once per cluster under the
/// same name (the Namespace, Flux's GitRepository and shared Kustomizations, all in
/// `_gitops/{namespace,flux}/<cluster>/`) are told apart by their cluster:
/// `Namespace/devboxes@prod`. A file that is not an object, or that repeats an id already seen,
/// is keyed by its path, so nothing is ever dropped from the comparison.
pub(crate) fn resources(tree: &OutTree) -> Resources {
    let mut resources = Resources::new();
    for (path, text) in &tree.files {
        let owner = emit::owner(path, text);
        // A file of several documents (hand-written: devbox-gen writes one object a file) is
        // not one object, whichever of them a single-document parse would keep.
        let several = (text.starts_with("---") || text.contains("\n---"))
            && serde_saphyr::from_multiple::<Value>(text).is_ok_and(|documents| documents.len() > 1);
        let object = if several { None } else { serde_saphyr::from_str::<Value>(text).ok() }.and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        });
        let (kind, namespace, name) = match &object {
            Some(o) if is_bundle_kustomization(o) => ("Kustomization".to_string(), None, owner.clone()),
            Some(o) if !crate::check::kind(o).is_empty() && !crate::check::name(o).is_empty() => {
                let namespace = o.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).filter(|n| !n.is_empty());
                (crate::check::kind(o).to_string(), namespace.map(str::to_string), crate::check::name(o).to_string())
            }
            _ => ("File".to_string(), None, path.clone()),
        };
        let mut id = match &namespace {
            Some(namespace) => format!("{kind}/{namespace}/{name}"),
            None => format!("{kind}/{name}"),
        };
        if let Some(cluster) = delivered_to(path) {
            id = format!("{id}@{cluster}");
        }
        if resources.contains_key(&id) {
            id = format!("File/{path}");
        }
        resources.insert(id.clone(), Resource { id, kind, namespace, name, path: path.clone(), owner, text: text.clone(), object });
    }
    resources
}

/// The `kustomization.yaml` of a bundle (kustomize's own), not a Flux Kustomization.
fn is_bundle_kustomization(object: &Object) -> bool {
    crate::check::kind(object) == "Kustomization"
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("kustomize.config.k8s.io/"))
}

/// The cluster a per-cluster delivery file goes to: `prod` for `_gitops/flux/prod/...`.
fn delivered_to(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(emit::GITOPS_DIR)?.strip_prefix('/')?;
    let rest = rest.strip_prefix("flux/").or_else(|| rest.strip_prefix("namespace/"))?;
    rest.split_once('/').map(|(cluster, _)| cluster)
}

/// The leaves that differ between two versions of an object, as paths of segments: list items
/// with a `name` are named (`containers[devbox]`), other lists count as one leaf.
pub(crate) fn changed_paths(old: &Value, new: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    collect_changed_paths(old, new, &mut Vec::new(), &mut out);
    out
}

/// [`changed_paths`] of two whole objects, without copying them into a `Value`.
pub(crate) fn changed_object_paths(old: &Object, new: &Object) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (x, y) = (old.get(key).unwrap_or(&Value::Null), new.get(key).unwrap_or(&Value::Null));
        if x != y {
            collect_changed_paths(x, y, &mut vec![key.clone()], &mut out);
        }
    }
    out
}

/// Paths (as segments; list items appended to their list's segment, `containers[devbox]`) of
/// the leaves that differ.
fn collect_changed_paths(old: &Value, new: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    // Something added or removed whole is compared with an empty one, to name what is inside.
    let empty = |other: &Value| match other {
        Value::Object(_) => Some(Value::Object(serde_json::Map::new())),
        Value::Array(_) => Some(Value::Array(Vec::new())),
        _ => None,
    };
    if old.is_null()
        && let Some(old) = empty(new)
    {
        return collect_changed_paths(&old, new, at, out);
    }
    if new.is_null()
        && let Some(new) = empty(old)
    {
        return collect_changed_paths(old, &new, at, out);
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null));
                if x != y {
                    at.push(key.clone());
                    collect_changed_paths(x, y, at, out);
                    at.pop();
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let named = |items: &Vec<Value>| -> Option<BTreeMap<String, Value>> {
                items.iter().map(|i| Some((i.get("name")?.as_str()?.to_string(), i.clone()))).collect()
            };
            let last = at.pop().unwrap_or_default();
            match (named(a), named(b)) {
                (Some(x), Some(y)) => {
                    let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                    for name in names {
                        let (p, q) = (x.get(name).unwrap_or(&Value::Null), y.get(name).unwrap_or(&Value::Null));
                        if p != q {
                            at.push(format!("{last}[{name}]"));
                            collect_changed_paths(p, q, at, out);
                            at.pop();
                        }
                    }
                }
                _ => {
                    // `last` goes back where it was: the caller pops it.
                    at.push(last);
                    out.push(at.clone());
                    return;
                }
            }
            at.push(last);
        }
        _ => out.push(at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> OutTree {
        OutTree { files: files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect() }
    }

    #[test]
    fn keys_objects_by_kind_namespace_and_name() {
        let header = "# Generated by devbox-gen from users/alice.toml. Do not edit.\n";
        let t = tree(&[
            (
                "prod/alice/statefulset-alice.yaml",
                &format!("{header}apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: alice\n  namespace: devboxes\n"),
            ),
            ("prod/alice/kustomization.yaml", &format!("{header}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")),
            ("prod/alice/namespace.yaml", &format!("{header}apiVersion: v1\nkind: Namespace\nmetadata:\n  name: devboxes\n")),
            ("prod/alice/broken.yaml", &format!("{header}: : not yaml [\n")),
        ]);
        let ids: Vec<String> = resources(&t).into_keys().collect();
        assert_eq!(ids, ["File/prod/alice/broken.yaml", "Kustomization/alice", "Namespace/devboxes", "StatefulSet/devboxes/alice"]);
        assert!(resources(&t).values().all(|r| r.owner == "alice"));
    }

    #[test]
    fn a_list_without_names_is_one_leaf_and_its_siblings_keep_their_path() {
        let old = serde_json::json!({"containers": [{"name": "devbox", "image": "a"}]});
        let new =
            serde_json::json!({"containers": [{"name": "devbox", "image": "a"}, {"name": "idle", "command": ["sh"], "image": "curl"}]});
        let paths: Vec<String> = changed_paths(&old, &new).iter().map(|p| p.join(".")).collect();
        assert_eq!(paths, ["containers[idle].command", "containers[idle].image", "containers[idle].name"]);
    }
}
