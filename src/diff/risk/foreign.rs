//! Files of `out/` that devbox-gen did not generate, where Argo CD or Flux applies them as they
//! are. `build` keeps a hand-written file (and deletes one that only copies the generated
//! header), `build --check` fails while either is there, and none of devbox-gen's checks ran
//! on them, since nothing in users/ or devbox.toml says them. In a pull request, that is the
//! one thing a reviewer must not miss: a ClusterRoleBinding to `cluster-admin` in `out/evil/`
//! passes every schema.
//!
//! Who reads what, by the engines' own rules ([`Readers::applying`]): Argo CD's directory
//! source reads `*.yaml`, `*.yml`, `*.json` and `*.jsonnet` of its directory and, without
//! `directory.recurse`, not of its subdirectories (argo-cd `reposerver/repository/repository.go`,
//! `manifestFile` and `findManifests`); the ApplicationSet's git directory generator makes an
//! Application of each directory `out/*` matches, never of `out/` itself. Flux's generated
//! kustomization reads the YAML and JSON of its path and of every directory under it. A
//! bundle's own kustomization.yaml lists only what devbox-gen wrote, and that list is all
//! either engine applies of the bundle.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Kind, Risk, code};
use crate::diff::resource::{Resource, Resources};

/// What reads `out/` in the cluster, as far as a hand-written file is concerned.
#[derive(Debug, Default)]
pub(crate) struct Readers<'a> {
    pub argocd: bool,
    pub flux: bool,
    /// The compiled bundles' directories (`alice`, `prod/alice`).
    pub bundles: BTreeSet<&'a str>,
}

impl Readers<'_> {
    /// Who applies the file at `path` (relative to `out/`), in a sentence; `None` when nothing
    /// does.
    pub(crate) fn applying(&self, path: &str) -> Option<String> {
        let (dir, _) = path.rsplit_once('/')?;
        if self.bundles.contains(dir) {
            return None;
        }
        let shown = code(&format!("out/{dir}/"));
        if !self.argocd && !self.flux {
            return Some(
                "Nothing delivers out/ by itself (devbox.toml has no `gitops`): whoever applies out/ by hand applies it too.".into(),
            );
        }
        if let Some(rest) = path.strip_prefix(crate::emit::GITOPS_DIR).and_then(|p| p.strip_prefix('/')) {
            let parts: Vec<&str> = rest.split('/').collect();
            let (engine, direct) = match parts.as_slice() {
                [engine, _cluster, _file] => (*engine, true),
                [engine, _cluster, _, ..] => (*engine, false),
                _ => return None,
            };
            let argocd = self.argocd && direct && matches!(engine, "argocd" | "namespace");
            let flux = self.flux && matches!(engine, "flux" | "namespace");
            return match (argocd, flux) {
                (true, true) => Some(format!("Argo CD and Flux apply it as it is, with the rest of {shown}.")),
                (true, false) => Some(format!("Argo CD's Application of {shown} applies it as it is.")),
                (false, true) => Some(format!(
                    "Flux's Kustomization of {} applies it as it is (its generated kustomization reads subdirectories too).",
                    code(&format!("out/{}/{}/{}/", crate::emit::GITOPS_DIR, parts[0], parts[1]))
                )),
                (false, false) => None,
            };
        }
        // The ApplicationSet's generator matches the directories beside the bundles.
        let parent = dir.rsplit_once('/').map_or("", |(parent, _)| parent);
        let beside_bundles = self.bundles.iter().any(|bundle| bundle.rsplit_once('/').map_or("", |(p, _)| p) == parent);
        (self.argocd && beside_bundles).then(|| {
            format!(
                "Argo CD's ApplicationSet makes an Application of every directory beside the bundles, so it applies {shown} as it is (Flux applies only the directories it has a Kustomization for)."
            )
        })
    }
}

/// One risk per hand-written file the change adds or edits (`hand_written`: each file's path,
/// and who applies it), and the risks of the objects of a file of several documents, which
/// the comparison sees only as a whole file.
pub(crate) fn manifests(before: &Resources, after: &Resources, hand_written: &BTreeMap<String, String>) -> Vec<Risk> {
    let mut risks = Vec::new();
    for file in after.values() {
        let Some(applied) = hand_written.get(&file.path) else { continue };
        let old = before.values().find(|r| r.path == file.path);
        risks.push(manifest(file, old.is_some(), applied));
        if file.object.is_none() || is_list(file) {
            let documents = |resource: Option<&Resource>| -> Resources {
                resource.map(|r| documents(r).into_iter().map(|d| (d.id.clone(), d)).collect()).unwrap_or_default()
            };
            risks.extend(super::classify(&documents(old), &documents(Some(file)), &BTreeSet::new()));
        }
    }
    risks
}

fn manifest(file: &Resource, edited: bool, applied: &str) -> Risk {
    let documents = documents(file);
    let what = if !documents.is_empty() {
        let objects: Vec<String> = documents.iter().take(5).map(|d| format!("a {} {}", d.kind, code(&d.name))).collect();
        let more = if documents.len() > 5 { format!(" and {} more", documents.len() - 5) } else { String::new() };
        format!(": {}{more}", objects.join(", "))
    } else if file.object.is_some() && file.kind != "File" {
        format!(": a {} {}", file.kind, code(&file.name))
    } else if file.text == crate::write::UNREAD_FOREIGN {
        " (not read: a link, not UTF-8, or over 1 MiB)".into()
    } else {
        String::new()
    };
    let how = if edited { "is edited" } else { "is added" };
    let summary =
        format!("{} {how} by hand, not generated by devbox-gen, and nothing checked it{what}", code(&format!("out/{}", file.path)));
    let name = file.path.rsplit('/').next().unwrap_or_default();
    let kustomization = matches!(name, "kustomization.yaml" | "kustomization.yml" | "Kustomization");
    if kustomization && file.path.starts_with(crate::emit::GITOPS_DIR) {
        // Its object is named after its directory by the comparison, not by the file: no `what`.
        let summary = format!("{} {how} by hand, not generated by devbox-gen, and nothing checked it", code(&format!("out/{}", file.path)));
        return Risk::new(Kind::ForeignKustomization, file, summary)
            .fact("path", format!("out/{}", file.path))
            .detail("A kustomization file decides what Argo CD and Flux apply of its directory: only what it lists. The directory's own Application or Kustomization prunes everything else it applied before: the ApplicationSet and the boxes' Applications, or every box's Flux Kustomization, and deleting one of those deletes its box (its home volume excepted).")
            .detail(applied.to_string())
            .help("delete the file: out/_gitops/ is generated whole, and what it applies is said by devbox.toml");
    }
    Risk::new(Kind::ForeignManifest, file, summary)
        .fact("path", format!("out/{}", file.path))
        .detail(applied.to_string())
        .detail("Nothing in users/ or devbox.toml says it, so none of devbox-gen's checks ran on it; only the rules of this report did, and their risks for it are listed under the same name. `devbox-gen build --check` fails while it is there.")
        .help("deliver what belongs in the cluster from outside out/ (an Argo CD Application or Flux Kustomization of its own), where it is reviewed as what it is; otherwise delete the file")
}

/// A `List` (`kind: List`, `items`, often no name), which the cluster gets item by item.
fn is_list(file: &Resource) -> bool {
    file.object.as_ref().is_some_and(|object| crate::check::kind(object) == "List")
}

/// The objects of a file that is not one object: the documents of a multi-document YAML file,
/// or the items of a `List`, each as the cluster would get it.
fn documents(file: &Resource) -> Vec<Resource> {
    let values: Vec<Value> = match &file.object {
        Some(object) if is_list(file) => object.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        Some(_) => return Vec::new(),
        None => serde_saphyr::from_multiple::<Value>(&file.text).unwrap_or_default(),
    };
    values
        .into_iter()
        .filter_map(|value| match value {
            Value::Object(object) => Some(object),
            _ => None,
        })
        .filter(|object| !crate::check::kind(object).is_empty() && !crate::check::name(object).is_empty())
        .map(|object| {
            let (kind, name) = (crate::check::kind(&object).to_string(), crate::check::name(&object).to_string());
            let namespace = object.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string);
            let id = crate::check::object_id(&object);
            Resource {
                id,
                kind,
                namespace,
                name,
                path: file.path.clone(),
                owner: file.owner.clone(),
                text: String::new(),
                object: Some(object),
            }
        })
        .collect()
}

/// The branch's committed `out/` is not what users/ compiles to (`stale`: what a build would
/// create, update and remove there). Argo CD and Flux apply the committed files, which the rest
/// of the report, made from the compile, does not show. A home volume's claim edited there is
/// data: it can shrink or re-class the home (the sync then fails), or lose the annotations that
/// keep Argo CD and Flux from pruning it.
pub(crate) fn out_behind(stale: &crate::write::Changes) -> Option<Risk> {
    let count = stale.count();
    if count == 0 {
        return None;
    }
    let claims: Vec<&String> = stale.updated.iter().filter(|path| crate::write::is_claim_file(path)).collect();
    let shown = |paths: &[&String]| {
        let mut listed: Vec<String> = paths.iter().take(5).map(|path| code(&format!("out/{path}"))).collect();
        if paths.len() > 5 {
            listed.push(format!("and {} more", paths.len() - 5));
        }
        listed.join(", ")
    };
    let all: Vec<&String> = stale.updated.iter().chain(&stale.removed).chain(&stale.created).collect();
    let (kind, summary) = if claims.is_empty() {
        (
            Kind::OutBehind,
            format!(
                "the branch's out/ is not what users/ compiles to ({}), and Argo CD and Flux apply it as committed: {}",
                crate::text::plural(count, "file", "files"),
                shown(&all)
            ),
        )
    } else {
        (Kind::OutBehindHome, format!("the branch's out/ holds home volume claims users/ does not make: {}", shown(&claims)))
    };
    let mut risk = Risk {
        kind,
        user: "out/".into(),
        resource: "out/".into(),
        summary,
        details: Vec::new(),
        help: Vec::new(),
        facts: BTreeMap::new(),
    }
    .fact("files", all.iter().map(|path| format!("out/{path}")).collect::<Vec<_>>().join(" "))
    .detail("This report shows what users/ compiles to; Argo CD and Flux apply the branch's committed out/, so what differs reaches the cluster unreviewed: an edit by hand, or a change to users/ not rebuilt.");
    if !claims.is_empty() {
        risk = risk.detail("A claim edited by hand can ask for a smaller size or another storage class, which the API server refuses (the sync fails until someone acts), or drop the annotations that keep Argo CD and Flux from pruning it, and the next prune deletes the home and its data.");
    }
    Some(
        risk.help("run `devbox-gen build` and commit out/ (`build --check` fails until then); to undo a hand edit instead, check the file out from the base branch: `git checkout origin/main -- out/PATH`"),
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    fn readers<'a>(argocd: bool, flux: bool, bundles: &[&'a str]) -> Readers<'a> {
        Readers { argocd, flux, bundles: bundles.iter().copied().collect() }
    }

    /// Who applies what, by the engines' rules: Argo CD reads a directory without recursing,
    /// and the ApplicationSet makes an Application of each directory beside the bundles; Flux
    /// recurses; a bundle's kustomization.yaml lists what is applied of it.
    #[test]
    fn who_applies_a_hand_written_file() {
        let both = readers(true, true, &["alice", "bob"]);
        assert!(both.applying("evil/crb.yaml").unwrap().starts_with("Argo CD's ApplicationSet makes an Application"));
        assert_eq!(both.applying("evil/sub/crb.yaml"), None, "an Application of out/evil/ does not recurse");
        assert_eq!(both.applying("alice/extra.yaml"), None, "alice's kustomization.yaml does not list it");
        assert_eq!(both.applying("root.yaml"), None, "the generator matches directories of out/, not out/ itself");
        assert_eq!(both.applying("_gitops/x.yaml"), None);
        assert_eq!(both.applying("_gitops/other/default/x.yaml"), None);
        assert!(both.applying("_gitops/argocd/default/x.yaml").unwrap().starts_with("Argo CD's Application of"));
        assert_eq!(both.applying("_gitops/argocd/default/sub/x.yaml"), None);
        assert!(
            both.applying("_gitops/flux/default/sub/x.yaml").unwrap().starts_with("Flux's Kustomization of `out/_gitops/flux/default/`")
        );
        assert!(both.applying("_gitops/namespace/default/x.yaml").unwrap().starts_with("Argo CD and Flux apply it"));
        // Flux alone: no ApplicationSet.
        assert_eq!(readers(false, true, &["alice"]).applying("evil/crb.yaml"), None);
        // With [[clusters]], the generator matches the directories of a cluster's directory.
        let clusters = readers(true, false, &["prod/alice"]);
        assert!(clusters.applying("prod/evil/crb.yaml").is_some());
        assert_eq!(clusters.applying("evil/crb.yaml"), None);
        // No gitops: applied by hand, whoever does it.
        assert!(readers(false, false, &["alice"]).applying("evil/crb.yaml").unwrap().starts_with("Nothing delivers out/ by itself"));
    }
}
