//! After emit, instead of write: what compiling users/ would change in `out/`, for the person
//! reviewing the PR.
//!
//! [`plan_changes`] compares two `out/` trees (committed and compiled; [`split_unchanged`] sets
//! aside the files that are the same bytes first) object by object, keyed by
//! `Kind/namespace/name` rather than by file path ([`resource`]), groups the changes by the user
//! they belong to, diffs each changed file ([`unified`]), classifies what the change does to
//! people and their data ([`risk`]) and what it does to the bill ([`cost`]). [`render`] prints
//! the result for a terminal, a PR comment or a bot. [`git`] reads the committed `out/` of
//! another revision. Nothing here writes.

pub(crate) mod cost;
pub(crate) mod git;
pub(crate) mod render;
pub(crate) mod resource;
pub(crate) mod risk;
pub(crate) mod unified;

use std::collections::{BTreeMap, BTreeSet};

use crate::emit::{self, OutTree};
// Re-exported: the risk modules say `crate::diff::plural`.
pub(crate) use crate::text::plural;
use resource::Resource;
pub(crate) use risk::Risk;

/// What happened to a resource, or to a user's whole bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        }
    }
}

/// One object that differs.
#[derive(Clone, Debug)]
pub(crate) struct ResourceChange {
    /// `StatefulSet/devboxes/alice`.
    pub id: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub change: Change,
    /// `out/`-relative paths on each side (they differ when a bundle moves).
    pub before: Option<String>,
    pub after: Option<String>,
    /// Unified diff of the files, `--- a/out/...` first.
    pub diff: String,
}

impl ResourceChange {
    /// The paths of an object whose file moves in `out/` with the same bytes (a bundle moving
    /// to a cluster's directory): what to say instead of an empty diff.
    pub(crate) fn moved_only(&self) -> Option<(&str, &str)> {
        match (self.change, &self.before, &self.after) {
            (Change::Changed, Some(before), Some(after)) if before != after && !self.diff.contains("\n@@") => Some((before, after)),
            _ => None,
        }
    }
}

/// The changes of one user's bundle, or of the delivery manifests devbox.toml owns.
#[derive(Clone, Debug)]
pub(crate) struct UserChange {
    pub user: String,
    /// Added: no bundle before; removed: none after; changed: both.
    pub change: Change,
    pub resources: Vec<ResourceChange>,
}

impl UserChange {
    /// The group of `out/_gitops/`'s shared objects (ApplicationSet, GitRepository, the
    /// Namespace...): devbox.toml's, not a person's.
    pub(crate) fn is_shared(&self) -> bool {
        self.user == crate::delivery::SETTINGS_SOURCE
    }

    /// The group of one file devbox-gen did not generate ([`foreign_group`]): nobody's box.
    pub(crate) fn is_hand_written(&self) -> bool {
        is_hand_written_group(&self.user)
    }
}

/// Whether a group name (a [`UserChange`]'s, a risk's user) is that of a hand-written file.
pub(crate) fn is_hand_written_group(name: &str) -> bool {
    name.starts_with(FOREIGN_PREFIX)
}

/// What the group of a hand-written file of `out/` starts with: `out/evil/crb.yaml`. No user
/// name holds a `/`.
const FOREIGN_PREFIX: &str = "out/";

fn foreign_group(path: &str) -> String {
    format!("{FOREIGN_PREFIX}{path}")
}

/// One field that changes in the same kind of object for one or more users: what a template or
/// devbox.toml change does, told once however many boxes it touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldChange {
    pub kind: String,
    /// `spec.template.spec.containers[devbox].image`.
    pub path: String,
    /// Whose objects change there, sorted.
    pub users: Vec<String>,
}

/// Everything that differs, and what it means.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    /// By user name.
    pub users: Vec<UserChange>,
    /// Most dangerous first.
    pub risks: Vec<Risk>,
    /// The fields that change in objects present on both sides, the most widespread first.
    pub fields: Vec<FieldChange>,
    /// The boxes whose billed resources change, by user.
    pub cost: Vec<cost::BoxCost>,
    /// devbox.toml's `[prices]`, to put a price on `cost` ([`Plan::priced`]).
    pub prices: Option<cost::PriceList>,
    /// With `--base`: the files of the branch's own `out/` that are not what users/ compiles
    /// to, sorted. Argo CD and Flux apply the committed `out/`, so the report says so first.
    pub out_behind: Vec<String>,
    /// What is said of the comparison itself rather than of a change: with `--base`, a shallow
    /// clone, a base with commits the branch lacks, a config repo that moved. Warnings on
    /// stderr too; the PR comment and the JSON carry them, so the reviewer reads them.
    pub notes: Vec<Note>,
}

/// A warning about the comparison, as the reports show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Note {
    pub message: String,
    /// What to do about it.
    pub help: Vec<String>,
}

impl From<&crate::diagnostic::Diagnostic> for Note {
    fn from(diagnostic: &crate::diagnostic::Diagnostic) -> Self {
        Note { message: diagnostic.message.clone(), help: diagnostic.help.clone() }
    }
}

/// How many of what, for the one-line summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub users_added: usize,
    pub users_removed: usize,
    pub users_changed: usize,
    pub resources_added: usize,
    pub resources_removed: usize,
    pub resources_changed: usize,
    /// Resources of the shared delivery manifests (devbox.toml's group) that changed in any way.
    pub shared_resources: usize,
    /// Files of `out/` devbox-gen did not generate that the change adds or edits.
    pub hand_written: usize,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty() && self.risks.is_empty()
    }

    /// The plan with devbox.toml's prices, which the command knows and the objects do not.
    pub(crate) fn priced(self, prices: Option<&crate::model::Prices>) -> Self {
        Self { prices: prices.map(cost::PriceList::new), ..self }
    }

    /// What the change does to the bill (to the resources, without prices).
    pub(crate) fn cost(&self) -> cost::Report<'_> {
        cost::Report::new(&self.cost, self.prices.as_ref())
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for user in &self.users {
            match user.change {
                _ if user.is_shared() => counts.shared_resources += user.resources.len(),
                _ if user.is_hand_written() => counts.hand_written += 1,
                Change::Added => counts.users_added += 1,
                Change::Removed => counts.users_removed += 1,
                Change::Changed => counts.users_changed += 1,
            }
            for resource in &user.resources {
                match resource.change {
                    Change::Added => counts.resources_added += 1,
                    Change::Removed => counts.resources_removed += 1,
                    Change::Changed => counts.resources_changed += 1,
                }
            }
        }
        counts
    }

    /// "3 users changed: 1 added, 1 removed, 4 resources changed": users added and removed
    /// whole, then how many resources changed in the bundles of the others; then the shared
    /// delivery manifests, which are nobody's bundle.
    pub(crate) fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let counts = self.counts();
        let shared = (counts.shared_resources > 0)
            .then(|| format!("{} (devbox.toml)", plural(counts.shared_resources, "shared resource changed", "shared resources changed")));
        let hand_written = (counts.hand_written > 0)
            .then(|| plural(counts.hand_written, "file not generated by devbox-gen", "files not generated by devbox-gen"));
        let shared = match (shared, hand_written) {
            (Some(shared), Some(hand_written)) => Some(format!("{shared}; {hand_written}")),
            (shared, hand_written) => shared.or(hand_written),
        };
        let people = counts.users_added + counts.users_removed + counts.users_changed;
        if people == 0 {
            // Only the branch's own out/ differs from the compile (`out-behind`).
            return shared.unwrap_or_else(|| "no change compiled from users/, but the branch's out/ differs from it".into());
        }
        let mut parts = Vec::new();
        if counts.users_added > 0 {
            parts.push(format!("{} added", counts.users_added));
        }
        if counts.users_removed > 0 {
            parts.push(format!("{} removed", counts.users_removed));
        }
        let in_changed: usize = self
            .users
            .iter()
            .filter(|u| u.change == Change::Changed && !u.is_shared() && !u.is_hand_written())
            .map(|u| u.resources.len())
            .sum();
        if in_changed > 0 {
            parts.push(plural(in_changed, "resource changed", "resources changed"));
        }
        let users = format!("{}: {}", plural(people, "user changed", "users changed"), parts.join(", "));
        match shared {
            Some(shared) => format!("{users}; {shared}"),
            None => users,
        }
    }
}

fn side(resource: Option<&Resource>) -> Option<(&str, &str)> {
    resource.map(|r| (r.path.as_str(), r.text.as_str()))
}

/// Splits a compiled tree into the files that differ from the baseline and the paths of those
/// that do not (`unchanged` says which), with the users who own the latter.
pub(crate) fn split_unchanged(tree: OutTree, unchanged: impl Fn(&str, &str) -> bool) -> (OutTree, BTreeSet<String>, BTreeSet<String>) {
    let (mut differing, mut same, mut owners) = (OutTree::default(), BTreeSet::new(), BTreeSet::new());
    for (path, text) in tree.files {
        if unchanged(&path, &text) {
            owners.insert(emit::owner(&path, &text));
            same.insert(path);
        } else {
            differing.files.insert(path, text);
        }
    }
    (differing, same, owners)
}

/// The changes by user, and their risks, between two `out/` trees that hold only what differs
/// ([`split_unchanged`] sets the rest aside before anything is parsed, so the cost follows the
/// size of the change, not of `out/`). `unchanged_owners` are the users who also have files
/// that did not change (so they are neither added nor removed). `hand_written` are the files
/// devbox-gen did not generate that Argo CD or Flux apply all the same, by path, with who
/// applies each: each is a group of its own (`out/PATH`) and a `foreign-manifest` risk.
pub(crate) fn plan_changes(
    before: &OutTree,
    after: &OutTree,
    unchanged_owners: &BTreeSet<String>,
    hand_written: &BTreeMap<String, String>,
) -> Plan {
    let mut old = resource::resources(before);
    let mut new = resource::resources(after);
    for resource in old.values_mut().chain(new.values_mut()).filter(|r| hand_written.contains_key(&r.path)) {
        resource.owner = foreign_group(&resource.path);
    }
    let mut users: BTreeMap<String, Vec<ResourceChange>> = BTreeMap::new();
    let mut fields: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let successors = resource::successors(&old, &new);
    let replaced: BTreeSet<&String> = successors.values().collect();
    let ids: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).filter(|id| !replaced.contains(id)).collect();
    for id in ids {
        // A new version of a content-addressed object is compared with the one it replaces.
        let (a, b) = match successors.get(id) {
            Some(predecessor) => (old.get(predecessor), new.get(id)),
            None => (old.get(id), new.get(id)),
        };
        if let (Some(Resource { object: Some(x), .. }), Some(Resource { object: Some(y), kind, owner, .. })) = (a, b) {
            for path in resource::changed_object_paths(x, y) {
                fields.entry((kind.clone(), path.join("."))).or_default().insert(owner.clone());
            }
        }
        let change = match (a, b) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(a), Some(b)) if a.text != b.text || a.path != b.path => Change::Changed,
            _ => continue,
        };
        let Some(either) = b.or(a) else { continue };
        let mut diff = unified::unified(side(a), side(b));
        if let (true, Some(a), Some(b)) = (diff.is_empty(), a, b) {
            diff = format!("--- a/out/{}\n+++ b/out/{}\n", a.path, b.path); // moved, unchanged
        }
        users.entry(either.owner.clone()).or_default().push(ResourceChange {
            id: id.clone(),
            kind: either.kind.clone(),
            namespace: either.namespace.clone(),
            name: either.name.clone(),
            change,
            before: a.map(|r| r.path.clone()),
            after: b.map(|r| r.path.clone()),
            diff,
        });
    }
    let had = |user: &str, set: &resource::Resources| unchanged_owners.contains(user) || set.values().any(|r| r.owner == user);
    let users: Vec<UserChange> = users
        .into_iter()
        .map(|(user, mut resources)| {
            // Objects first, by id; the kustomization (a list of the files) last.
            resources.sort_by(|a, b| (a.kind == "Kustomization", &a.id).cmp(&(b.kind == "Kustomization", &b.id)));
            let change = match (had(&user, &old), had(&user, &new)) {
                (false, _) => Change::Added,
                (_, false) => Change::Removed,
                _ => Change::Changed,
            };
            UserChange { user, change, resources }
        })
        .collect();
    let mut fields: Vec<FieldChange> =
        fields.into_iter().map(|((kind, path), users)| FieldChange { kind, path, users: users.into_iter().collect() }).collect();
    fields.sort_by(|a, b| b.users.len().cmp(&a.users.len()).then_with(|| (&a.kind, &a.path).cmp(&(&b.kind, &b.path))));
    let cost = cost::box_costs(&old, &new, &users);
    let mut risks = risk::classify(&old, &new, unchanged_owners);
    risks.extend(risk::foreign::manifests(&old, &new, hand_written));
    risks.sort_by(risk::order);
    Plan { users, risks, fields, cost, prices: None, out_behind: Vec::new(), notes: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares the `out/` trees before and after: the changes by user, and their risks. Files
    /// that are the same bytes at the same path on both sides are set aside before anything is
    /// parsed, so the cost follows the size of the change, not of `out/`.
    fn plan(before: &OutTree, after: &OutTree) -> Plan {
        let (after, same, unchanged_owners) =
            split_unchanged(after.clone(), |path, text| before.files.get(path).is_some_and(|t| t == text));
        let before =
            OutTree { files: before.files.iter().filter(|(path, _)| !same.contains(*path)).map(|(p, t)| (p.clone(), t.clone())).collect() };
        plan_changes(&before, &after, &unchanged_owners, &BTreeMap::new())
    }

    fn file(user: &str, kind: &str, name: &str, extra: &str) -> (String, String) {
        (
            format!("{user}/{}-{name}.yaml", kind.to_lowercase()),
            format!(
                "# Generated by devbox-gen from users/{user}.toml. Do not edit.\napiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\n{extra}"
            ),
        )
    }

    fn tree(files: Vec<(String, String)>) -> OutTree {
        OutTree { files: files.into_iter().collect() }
    }

    #[test]
    fn groups_by_user_and_summarises() {
        let before =
            tree(vec![file("a", "ConfigMap", "a", "data: {x: '1'}\n"), file("b", "ConfigMap", "b", ""), file("b", "Service", "b", "")]);
        let after =
            tree(vec![file("a", "ConfigMap", "a", "data: {x: '2'}\n"), file("a", "Service", "a", ""), file("c", "ConfigMap", "c", "")]);
        let plan = plan(&before, &after);
        let users: Vec<(&str, Change, usize)> = plan.users.iter().map(|u| (u.user.as_str(), u.change, u.resources.len())).collect();
        assert_eq!(users, [("a", Change::Changed, 2), ("b", Change::Removed, 2), ("c", Change::Added, 1)]);
        assert_eq!(plan.summary(), "3 users changed: 1 added, 1 removed, 2 resources changed");
        assert_eq!(plan.users[0].resources[0].change, Change::Changed);
        assert!(plan.users[0].resources[0].diff.contains("-data: {x: '1'}\n+data: {x: '2'}\n"), "{}", plan.users[0].resources[0].diff);
    }

    #[test]
    fn a_bundle_that_moves_is_the_same_objects() {
        let (path, text) = file("a", "ConfigMap", "a", "");
        let before = tree(vec![(path, text.clone())]);
        let after = tree(vec![(format!("prod/{}", "a/configmap-a.yaml"), text)]);
        let plan = plan(&before, &after);
        assert_eq!(plan.users.len(), 1);
        let change = &plan.users[0].resources[0];
        assert_eq!(
            (change.change, change.before.as_deref(), change.after.as_deref()),
            (Change::Changed, Some("a/configmap-a.yaml"), Some("prod/a/configmap-a.yaml"))
        );
        assert_eq!(plan.summary(), "1 user changed: 1 resource changed");
    }

    #[test]
    fn unchanged_files_of_a_user_keep_them_changed_not_added() {
        let before = tree(vec![file("a", "ConfigMap", "a", ""), file("a", "Service", "a", "")]);
        let after = tree(vec![file("a", "ConfigMap", "a", ""), file("a", "Service", "a", "spec: {}\n"), file("a", "Secret", "a", "")]);
        let plan = plan(&before, &after);
        assert_eq!(plan.users.len(), 1);
        assert_eq!(plan.users[0].change, Change::Changed);
        let changes: Vec<(&str, Change)> = plan.users[0].resources.iter().map(|r| (r.id.as_str(), r.change)).collect();
        assert_eq!(changes, [("Secret/a", Change::Added), ("Service/a", Change::Changed)]);
    }

    #[test]
    fn the_shared_delivery_manifests_are_not_counted_as_a_user() {
        let shared = |extra: &str| file("x", "ApplicationSet", "devboxes", extra);
        let retag =
            |(path, text): (String, String)| (path.replace("x/", "_gitops/argocd/default/"), text.replace("users/x.toml", "devbox.toml"));
        let before = tree(vec![retag(shared("")), file("a", "ConfigMap", "a", "")]);
        let after = tree(vec![retag(shared("spec: {}\n")), file("a", "ConfigMap", "a", "")]);
        let plan = plan(&before, &after);
        assert_eq!(plan.summary(), "1 shared resource changed (devbox.toml)");
        assert_eq!(plan.counts().users_changed, 0);
        let after = tree(vec![retag(shared("spec: {}\n")), file("a", "ConfigMap", "a", "data: {}\n"), file("b", "ConfigMap", "b", "")]);
        assert_eq!(
            self::plan(&before, &after).summary(),
            "2 users changed: 1 added, 1 resource changed; 1 shared resource changed (devbox.toml)"
        );
    }

    #[test]
    fn a_new_version_of_a_content_addressed_object_is_compared_with_the_old_one() {
        let scripts = |hash: &str, line: &str| {
            (
                format!("_gitops/namespace/default/configmap-devbox-scripts-{hash}.yaml"),
                format!(
                    "{}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: devbox-scripts-{hash}\n  annotations:\n    devbox-gen.dev/scope: namespace\ndata:\n  start.sh: |\n    {line}\n",
                    emit::header("devbox.toml")
                ),
            )
        };
        let replaced = plan(&tree(vec![scripts("0123456789", "echo a")]), &tree(vec![scripts("abcdef0123", "echo b")]));
        let [shared] = replaced.users.as_slice() else { panic!("{:?}", replaced.users) };
        let [change] = shared.resources.as_slice() else { panic!("{:?}", shared.resources) };
        assert_eq!((change.change, change.name.as_str()), (Change::Changed, "devbox-scripts-abcdef0123"));
        assert!(change.diff.contains("-    echo a\n+    echo b\n"), "{}", change.diff);
        // Not content-addressed (no scope annotation): an added and a removed object.
        let plain = |name: &str| {
            (
                format!("a/configmap-{name}.yaml"),
                format!("{}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n", emit::header("users/a.toml")),
            )
        };
        let unpaired = plan(&tree(vec![plain("x-0123456789")]), &tree(vec![plain("x-abcdef0123")]));
        let changes: Vec<Change> = unpaired.users[0].resources.iter().map(|r| r.change).collect();
        assert_eq!(changes, [Change::Removed, Change::Added]);
    }

    #[test]
    fn nothing_changed() {
        let same = tree(vec![file("a", "ConfigMap", "a", "")]);
        assert!(plan(&same, &same).is_empty());
        assert_eq!(plan(&same, &same).summary(), "no changes");
    }
}
