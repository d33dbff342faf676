//! Across builds: what Kubernetes cannot apply to a home volume that already exists. A PVC
//! can grow but never shrink, and its storage class, like the rest of its spec (access modes,
//! volume mode, selector, data source), never changes; `build` and `diff` refuse
//! such a change before anything is written, blaming the line that decided it, and warn when
//! the home volumes would be created in another namespace (each box would start empty).

use std::collections::{BTreeMap, BTreeSet};

use super::{Pointer, is_home_volume};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::OutTree;
use crate::quantity::Quantity;
use crate::read::ConfigRepo;
use crate::render::Object;

/// What makes a home volume: its size and class, which Kubernetes can only grow / never change,
/// and the rest of its spec that no update may change ([`FIXED_FIELDS`]), as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HomeVolume {
    pub size: String,
    pub storage_class: Option<String>,
    pub namespace: Option<String>,
    pub fixed: BTreeMap<&'static str, String>,
    /// The file under `out/` when it has no devbox-gen header: someone edited it by hand, and
    /// what it says may be what the cluster holds.
    pub hand_edited: Option<String>,
}

/// A claim's spec fields besides size and class that the API server refuses to change once it
/// exists ("spec is immutable after creation except resources.requests and
/// volumeAttributesClassName for bound claims": ValidatePersistentVolumeClaimUpdate in
/// kubernetes/kubernetes pkg/apis/core/validation). `volumeName` is set by the binder, so a
/// template that leaves it out changes nothing; one that sets it is held to it.
const FIXED_FIELDS: [&str; 5] = ["accessModes", "volumeMode", "selector", "dataSource", "dataSourceRef"];

impl HomeVolume {
    pub(crate) fn of(object: &Object) -> Option<Self> {
        if !is_home_volume(object) {
            return None;
        }
        Some(Self {
            size: object.pointer_str("/spec/resources/requests/storage")?.to_string(),
            storage_class: object.pointer_str("/spec/storageClassName").map(str::to_string),
            namespace: object.pointer_str("/metadata/namespace").map(str::to_string),
            fixed: FIXED_FIELDS
                .iter()
                .filter_map(|field| {
                    let value = object.get("spec")?.get(*field).map(serde_json::Value::to_string);
                    // What the API server stores when the field is left out.
                    let value = value.or_else(|| (*field == "volumeMode").then(|| "\"Filesystem\"".to_string()))?;
                    Some((*field, value))
                })
                .collect(),
            hand_edited: None,
        })
    }
}

/// A change Kubernetes cannot apply to a home volume that already exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImpossibleChange {
    Shrink { user: String, from: String, to: String },
    StorageClass { user: String, from: Option<String>, to: Option<String> },
}

impl ImpossibleChange {
    pub(crate) fn user(&self) -> &str {
        match self {
            Self::Shrink { user, .. } | Self::StorageClass { user, .. } => user,
        }
    }

    /// The user-file field that decides it.
    fn field(&self) -> &'static str {
        match self {
            Self::Shrink { .. } => "home.size",
            Self::StorageClass { .. } => "home.storage_class",
        }
    }

    /// `100Gi → 50Gi`.
    fn change_shown(&self) -> String {
        let class = |c: &Option<String>| c.clone().unwrap_or_else(|| "the cluster default".into());
        match self {
            Self::Shrink { from, to, .. } => format!("{from} → {to}"),
            Self::StorageClass { from, to, .. } => format!("{} → {}", class(from), class(to)),
        }
    }

    /// The value the volume has now (`None`: the cluster's default storage class).
    fn old_value(&self) -> Option<&str> {
        match self {
            Self::Shrink { from, .. } => Some(from),
            Self::StorageClass { from, .. } => from.as_deref(),
        }
    }

    /// What Kubernetes does not allow.
    fn why(&self) -> &'static str {
        match self {
            Self::Shrink { .. } => "Kubernetes cannot shrink a PersistentVolumeClaim",
            Self::StorageClass { .. } => "a PersistentVolumeClaim's storage class is immutable",
        }
    }

    /// The new value: what the rendered claim asks for.
    fn new_value(&self) -> Option<&str> {
        match self {
            Self::Shrink { to, .. } => Some(to),
            Self::StorageClass { to, .. } => to.as_deref(),
        }
    }

    /// Whether the rendered claim asks for what the configuration says (`configured`: the user
    /// file's value, else `[defaults]`', else the built-in default): if not, the template
    /// decided it.
    fn follows(&self, configured: Option<&str>) -> bool {
        match self {
            Self::Shrink { to, .. } => {
                configured.and_then(|c| Quantity::parse(c).ok()).zip(Quantity::parse(to).ok()).is_some_and(|(c, to)| c == to)
            }
            Self::StorageClass { to, .. } => to.as_deref() == configured,
        }
    }

    /// The value a home table sets for this change's field, if it sets one.
    fn set_in<'h>(&self, home: Option<&'h crate::model::Home>) -> Option<&'h str> {
        home.and_then(|h| match self {
            Self::Shrink { .. } => h.size.as_deref(),
            Self::StorageClass { .. } => h.storage_class.as_deref(),
        })
    }

    /// The same change when the template decided the new value, not the configuration.
    fn to_template_diagnostic(&self, template: &str, configured: Option<&str>) -> Diagnostic {
        let field = self.field();
        let shown = |value: Option<&str>| value.map_or_else(|| "none (the cluster's default)".to_string(), |v| format!("`{v}`"));
        Diagnostic::error(format!("{template} would change `{}`'s home volume: {}", self.user(), self.change_shown()))
            .in_path(template.to_string())
            .help(format!(
                "the template sets it: users/{}.toml and devbox.toml ask for {} as `{field}`, the template renders {}",
                self.user(),
                shown(configured),
                shown(self.new_value())
            ))
            .help(self.why())
            .help("change the template back, or have it follow the box's own value (`box.home`)")
    }

    pub(crate) fn to_diagnostic(&self) -> Diagnostic {
        let source = format!("users/{}.toml", self.user());
        match self {
            Self::Shrink { user, from, to } => Diagnostic::error(format!("the home volume of `{user}` would shrink from {from} to {to}"))
                .in_path(source)
                .help("Kubernetes cannot shrink a PersistentVolumeClaim: set `home.size` back to at least the current size")
                .help("to really get a smaller volume, copy the data to a new box and archive this one"),
            Self::StorageClass { user, from, to } => Diagnostic::error(format!(
                "the storage class of `{user}`'s home volume would change from {} to {}",
                from.as_deref().unwrap_or("the cluster default"),
                to.as_deref().unwrap_or("the cluster default")
            ))
            .in_path(source)
            .help(match from {
                Some(class) => format!("a PersistentVolumeClaim's storage class is immutable: set `home.storage_class = \"{class}\"` back"),
                None => "a PersistentVolumeClaim's storage class is immutable: remove `home.storage_class`, as the claim was made with the cluster's default class".to_string(),
            })
            .help("to move the data to another class, snapshot the volume and restore it into a new claim by hand"),
        }
    }

    /// The same change when the old claim is a file of `out/` edited by hand: the value may be
    /// the cluster's, and only the person who edited it knows.
    fn to_hand_edit_diagnostic(&self, file: &str) -> Diagnostic {
        let user = self.user();
        let field = self.field();
        let keep = match self.old_value() {
            Some(value) => format!("set `{field} = \"{value}\"` in users/{user}.toml"),
            None => format!("leave `{field}` out of users/{user}.toml and of devbox.toml's `[defaults]`"),
        };
        Diagnostic::error(format!("`{user}`'s home volume, edited by hand in {file}, would change: {}", self.change_shown()))
            .in_path(file.to_string())
            .help(format!("{} has no devbox-gen header: it was edited by hand, and a build replaces it with what users/{user}.toml says", file))
            .help(self.why())
            .help(format!(
                "if the claim in the cluster is as the file says, keep it: {keep}; if not, restore the generated file (`git checkout -- {file}`) or delete it"
            ))
    }
}

/// Home volumes by user, from the PVC files of a tree (`out/` on disk, at a git revision, or
/// just compiled).
pub(crate) fn home_volumes(tree: &OutTree) -> BTreeMap<String, HomeVolume> {
    let mut volumes = BTreeMap::new();
    for (path, text) in &tree.files {
        let file = path.rsplit_once('/').map_or(path.as_str(), |(_, file)| file);
        if !file.starts_with("persistentvolumeclaim-") {
            continue;
        }
        let Ok(object) = serde_saphyr::from_str::<Object>(text) else { continue };
        let Some(mut volume) = HomeVolume::of(&object) else { continue };
        // A file without the header (a hand edit) belongs to the bundle it is in.
        let owner = match crate::emit::source_of(text) {
            Some(_) => crate::emit::owner(path, text),
            None => match crate::emit::bundle_of(path) {
                Some(user) => {
                    volume.hand_edited = Some(format!("out/{path}"));
                    user.to_string()
                }
                None => continue,
            },
        };
        volumes.insert(owner, volume);
    }
    volumes
}

/// What `build` and `diff` both refuse: going from `before` to `after` would need a change to a
/// home volume that Kubernetes cannot apply.
/// Each is blamed on the line that decided it: the user's own `home.size`, or devbox.toml's
/// `[defaults] home.size` once for every user who takes it from there.
pub(crate) fn refuse_impossible_changes(before: &OutTree, after: &OutTree, repo: &ConfigRepo) -> Result<(), Diagnostics> {
    let (was, is) = (home_volumes(before), home_volumes(after));
    let impossible = impossible_changes(&was, &is);
    let fixed = fixed_field_changes(&was, &is, repo);
    if impossible.is_empty() && fixed.0.is_empty() {
        return Ok(());
    }
    let hand_edited = |change: &ImpossibleChange| was.get(change.user()).and_then(|volume| volume.hand_edited.as_deref());
    let (by_hand, decided): (Vec<ImpossibleChange>, Vec<ImpossibleChange>) =
        impossible.into_iter().partition(|change| hand_edited(change).is_some());
    // What the claim holds now is what out/ says: a hand edit that keeps the generated header
    // cannot be told from a build's output, and is blamed on the setting, so say what else it
    // may be.
    let mut diagnostics = Diagnostics(
        locate_impossible_changes(&decided, repo)
            .0
            .into_iter()
            .map(|diagnostic| {
                diagnostic.help("the current value is what the claim in out/ holds: if that file was edited by hand and the edit never reached the cluster, restore it from Git (`git checkout -- out/`) and build again")
            })
            .collect(),
    );
    for change in &by_hand {
        diagnostics.push(change.to_hand_edit_diagnostic(hand_edited(change).unwrap_or_default()));
    }
    diagnostics.extend(fixed);
    Err(diagnostics)
}

/// Changes to a home volume's [`FIXED_FIELDS`], which no user file sets: the template's doing
/// (or a new devbox-gen's), one error per volume.
fn fixed_field_changes(before: &BTreeMap<String, HomeVolume>, after: &BTreeMap<String, HomeVolume>, repo: &ConfigRepo) -> Diagnostics {
    let template = repo.settings.as_ref().and_then(|s| s.value.template.clone());
    let mut diagnostics = Diagnostics::default();
    for (user, new) in after {
        let Some(old) = before.get(user) else { continue };
        let changed: Vec<String> = FIXED_FIELDS
            .iter()
            .filter(|field| old.fixed.get(*field) != new.fixed.get(*field))
            .map(|field| {
                let shown = |value: Option<&String>| value.map_or_else(|| "none".to_string(), |v| format!("`{v}`"));
                format!("`{field}` ({} → {})", shown(old.fixed.get(field)), shown(new.fixed.get(field)))
            })
            .collect();
        if changed.is_empty() {
            continue;
        }
        let diagnostic = Diagnostic::error(format!("the home volume of `{user}` would change {}", changed.join(", ")))
            .help("Kubernetes refuses any change to a claim's spec but its size once it exists, so every sync of this box would fail")
            .help("keep these fields as they are; a volume with another access mode is a new claim, with the data copied into it by hand");
        diagnostics.push(match (&old.hand_edited, &template) {
            (Some(file), _) => diagnostic
                .in_path(file.clone())
                .help(format!("{file} has no devbox-gen header: it was edited by hand; if the claim in the cluster is not as it says, restore the generated file or delete it")),
            (None, Some(template)) => diagnostic.in_path(template.clone()),
            (None, None) => diagnostic.in_path("devbox.toml"),
        });
    }
    diagnostics
}

/// A warning when the home volumes of existing boxes would be created in another namespace:
/// Kubernetes can apply that, but each box then starts with an empty home (`diff` explains it
/// as the `namespace-changed` risk).
pub(crate) fn warn_namespace_moves(before: &OutTree, after: &OutTree) -> Option<Diagnostic> {
    let (was, is) = (home_volumes(before), home_volumes(after));
    let mut moves: BTreeMap<(Option<&str>, Option<&str>), Vec<&str>> = BTreeMap::new();
    for (user, new) in &is {
        if let Some(old) = was.get(user).filter(|old| old.namespace != new.namespace) {
            moves.entry((old.namespace.as_deref(), new.namespace.as_deref())).or_default().push(user);
        }
    }
    let ((from, to), users) = moves.into_iter().max_by_key(|(_, users)| users.len())?;
    let name = |n: Option<&str>| format!("`{}`", n.unwrap_or("default"));
    Some(
        Diagnostic::warning(format!(
            "the namespace changes from {} to {} for {}: their home volumes stay behind in {}, and each box starts with an empty home",
            name(from),
            name(to),
            crate::diff::plural(users.len(), "box", "boxes"),
            name(from)
        ))
        .in_path("devbox.toml")
        .help("a PersistentVolumeClaim cannot change namespace: `devbox-gen diff` shows what moves and docs/reviewing.md how to rebind each volume; or keep the old `namespace`"),
    )
}

/// Where the value that makes a change impossible was set, when not in the user's own file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    /// In devbox.toml's `[defaults]`.
    Defaults,
    /// Nowhere: the built-in default.
    BuiltIn,
}

fn locate_impossible_changes(changes: &[ImpossibleChange], repo: &ConfigRepo) -> Diagnostics {
    let settings = repo.settings.as_ref();
    let mut shared: BTreeMap<(&'static str, Origin), Vec<&ImpossibleChange>> = BTreeMap::new();
    let mut diagnostics = Vec::new();
    let template = settings.and_then(|s| s.value.template.as_deref());
    for change in changes {
        let field = change.field();
        let user = repo.users.iter().find(|(name, _)| name == change.user()).map(|(_, parsed)| parsed);
        let set_by_user = user.is_some_and(|u| change.set_in(u.value.home.as_ref()).is_some());
        if let Some(template) = template {
            let built_in = match change {
                ImpossibleChange::Shrink { .. } => Some(crate::defaults::HOME_SIZE),
                ImpossibleChange::StorageClass { .. } => None,
            };
            let configured = user
                .and_then(|u| change.set_in(u.value.home.as_ref()))
                .or_else(|| settings.and_then(|s| change.set_in(s.value.defaults.home.as_ref())))
                .or(built_in);
            if !change.follows(configured) {
                diagnostics.push(change.to_template_diagnostic(template, configured));
                continue;
            }
        }
        match user {
            Some(user) if set_by_user => {
                diagnostics.push(change.to_diagnostic().at(&user.source, user.source.value_span(field), "set here"))
            }
            _ if settings.is_some_and(|s| change.set_in(s.value.defaults.home.as_ref()).is_some()) => {
                shared.entry((field, Origin::Defaults)).or_default().push(change);
            }
            _ => shared.entry((field, Origin::BuiltIn)).or_default().push(change),
        }
    }
    for ((field, origin), group) in shared {
        let users: Vec<String> = group.iter().map(|c| format!("{} ({})", c.user(), c.change_shown())).collect();
        let what = if field == "home.size" { "shrink" } else { "change the storage class of" };
        let setting = match origin {
            Origin::Defaults => format!("`[defaults] {field}`"),
            Origin::BuiltIn => format!("the built-in default of `{field}`"),
        };
        let message = format!(
            "{setting} would {what} the home {} of {}: {}",
            if group.len() == 1 { "volume" } else { "volumes" },
            crate::diff::plural(group.len(), "user", "users"),
            users.join(", ")
        );
        let mut diagnostic = Diagnostic::error(message);
        diagnostic = match (origin, settings) {
            (Origin::Defaults, Some(settings)) => {
                diagnostic.at(&settings.source, settings.source.value_span(&format!("defaults.{field}")), "set here")
            }
            _ => diagnostic.in_path("devbox.toml").help(format!(
                "neither these user files nor devbox.toml's `[defaults]` set `{field}`: the old value came from a `[defaults] {field}` this change removes, or from the built-in default of an earlier devbox-gen"
            )),
        };
        let keep = group.iter().map(|c| c.user()).collect::<Vec<_>>().join(", ");
        let old_values: Vec<Option<&str>> = group.iter().map(|c| c.old_value()).collect::<BTreeSet<_>>().into_iter().collect();
        let way_out = match old_values[..] {
            [Some(one)] => format!(
                "set `[defaults] {field}` back; or, to give only new boxes the new default, keep `{field} = \"{one}\"` in the files of {keep}"
            ),
            // A claim made with the cluster's default class has none in Git, and a user file
            // cannot say "none" while [defaults] names one.
            [None] => format!(
                "these claims were made with the cluster's default class, which a user file cannot keep while `[defaults]` names another: remove `[defaults] {field}`, and give new boxes their class in their own files"
            ),
            _ => format!(
                "set `[defaults] {field}` back; or, to give only new boxes the new default, keep `{field}` set to its current value in the files of {keep}, and remove `[defaults] {field}` for those made with the cluster's default class"
            ),
        };
        diagnostics.push(diagnostic.help(group[0].why()).help(way_out));
    }
    Diagnostics(diagnostics)
}

/// Compares home volumes before and after, by user: the changes `build` must refuse.
pub(crate) fn impossible_changes(before: &BTreeMap<String, HomeVolume>, after: &BTreeMap<String, HomeVolume>) -> Vec<ImpossibleChange> {
    let mut changes = Vec::new();
    for (user, new) in after {
        let Some(old) = before.get(user) else { continue };
        if let (Ok(from), Ok(to)) = (Quantity::parse(&old.size), Quantity::parse(&new.size))
            && to < from
        {
            changes.push(ImpossibleChange::Shrink { user: user.clone(), from: old.size.clone(), to: new.size.clone() });
        }
        if old.storage_class != new.storage_class {
            changes.push(ImpossibleChange::StorageClass {
                user: user.clone(),
                from: old.storage_class.clone(),
                to: new.storage_class.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(size: &str, class: Option<&str>) -> HomeVolume {
        HomeVolume { size: size.into(), storage_class: class.map(Into::into), namespace: None, fixed: BTreeMap::new(), hand_edited: None }
    }

    #[test]
    fn growing_is_fine_shrinking_and_reclassing_are_not() {
        let before = BTreeMap::from([("a".to_string(), volume("100Gi", Some("std")))]);
        let grow = BTreeMap::from([("a".to_string(), volume("200Gi", Some("std")))]);
        assert!(impossible_changes(&before, &grow).is_empty());
        let shrink = BTreeMap::from([("a".to_string(), volume("99Gi", Some("std")))]);
        assert!(matches!(impossible_changes(&before, &shrink)[..], [ImpossibleChange::Shrink { .. }]));
        let reclass = BTreeMap::from([("a".to_string(), volume("100Gi", None))]);
        assert!(matches!(impossible_changes(&before, &reclass)[..], [ImpossibleChange::StorageClass { .. }]));
        let new_user = BTreeMap::from([("b".to_string(), volume("1Gi", None))]);
        assert!(impossible_changes(&before, &new_user).is_empty());
    }
}
