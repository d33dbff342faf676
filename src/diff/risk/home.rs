//! Data risks: a home volume that nothing mounts any more, because its user was removed or
//! renamed (the box gets a new, empty one) or its box moves to another cluster (the data does not
//! follow).

use std::collections::BTreeSet;

use super::{Kind, Risk, annotation, code, is_home, namespace_flag, owner_email, platform};
use crate::check::{ARGO_SYNC_OPTIONS, FLUX_PRUNE};
use crate::diff::resource::{Resource, Resources};

/// Whether a claim carries what stops Argo CD and Flux from pruning or deleting it.
pub(crate) fn prune_protected(resource: &Resource) -> bool {
    let argo = annotation(resource, ARGO_SYNC_OPTIONS).unwrap_or("");
    argo.contains("Prune=false") && argo.contains("Delete=false") && annotation(resource, FLUX_PRUNE) == Some("disabled")
}

fn stays_in_cluster(pvc: &Resource) -> String {
    if prune_protected(pvc) {
        "The volume and its data stay in the cluster: prune is disabled for it (Argo CD `Prune=false,Delete=false`, Flux `prune: disabled`), so the sync leaves it alone.".into()
    } else {
        "The claim in out/ does not carry the annotations that stop Argo CD and Flux from pruning it: a sync with pruning enabled DELETES it and its data.".into()
    }
}

fn delete_command(pvc: &Resource) -> String {
    format!(
        "to really delete the data once nobody needs it: `kubectl {}delete persistentvolumeclaim {}` (the disk goes too when the storage class's reclaim policy is Delete)",
        namespace_flag(pvc),
        pvc.name
    )
}

fn dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

pub(super) fn volumes(before: &Resources, after: &Resources) -> Vec<Risk> {
    let mut risks = Vec::new();
    let added: Vec<&Resource> = after.values().filter(|r| is_home(r) && !before.contains_key(&r.id)).collect();
    let users_after: BTreeSet<&str> = after.values().map(|r| r.owner.as_str()).collect();
    let destinations = platform::Destinations::new(before, after);
    for old in before.values().filter(|r| is_home(r)) {
        match after.get(&old.id) {
            // Same server: the claim stays bound where it is (platform::delivery_moved says so).
            Some(new) if destinations.another_cluster(old, new) => {
                let risk = match (platform::cluster_of(&old.path), platform::cluster_of(&new.path)) {
                    (Some(from), Some(to)) => Risk::new(
                        Kind::HomeVolumeMoved,
                        new,
                        format!("the box moves from cluster {} to cluster {}: its home does not follow", code(from), code(to)),
                    )
                    .fact("from", from)
                    .fact("to", to)
                    .detail(format!(
                        "On {} the box starts with a new, empty home volume {}. The data stays in the volume on {}, which keeps it (prune is disabled for it); nothing mounts it any more.",
                        code(to),
                        code(&new.name),
                        code(from)
                    ))
                    .detail(format!(
                        "On {from_code} the rest of the bundle leaves: Flux prunes the StatefulSet and its pod; Argo CD deletes the user's Application there but, with `preserveResourcesOnDeletion`, leaves the old pod running on {from_code} beside the new one.",
                        from_code = code(from)
                    ))
                    .help(format!(
                        "with Argo CD, stop the old pod once the new box is up: `kubectl --context {} {}delete statefulset,cronjob,service,networkpolicy,configmap,serviceaccount,secret,role,rolebinding --selector app.kubernetes.io/instance={}` (the home claim is not selected: it stays)",
                        from.replace('`', "'"),
                        namespace_flag(old),
                        old.owner
                    )),
                    _ => Risk::new(Kind::HomeVolumeMoved, new, format!("the bundle moves from out/{}/ to out/{}/", dir(&old.path), dir(&new.path)))
                        .fact("from", format!("out/{}/", dir(&old.path)))
                        .fact("to", format!("out/{}/", dir(&new.path)))
                        .detail(format!(
                            "If that is another cluster, the box there gets a new, empty home volume {}; the data stays in the volume of the old cluster, which keeps it (prune is disabled for it).",
                            code(&new.name)
                        )),
                };
                risks.push(risk.help(
                    "copy the data across before the box is used on the new cluster (a VolumeSnapshot, or rsync between the two boxes), then delete the old claim by hand",
                ));
            }
            // Another person's address on the same box: the files of the old one go with it.
            Some(new) if owner_email(old).is_some() && owner_email(new).is_some() && owner_email(old) != owner_email(new) => {
                let (from, to) = (owner_email(old).unwrap_or_default(), owner_email(new).unwrap_or_default());
                risks.push(
                    Risk::new(
                        Kind::HomeHandedOver,
                        new,
                        format!("the home volume {} passes from {} to {}, with every file in it", code(&new.name), code(from), code(to)),
                    )
                    .fact("from", from)
                    .fact("to", to)
                    .detail(format!(
                        "The box keeps its name, so its home keeps its claim: whoever logs in with the new keys finds {}'s files, shell history, tokens and keys in `~`.",
                        code(from)
                    ))
                    .help("if this is one person's new address, nothing else is needed")
                    .help(format!(
                        "if it is another person, give them a box of their own (a new user file), and archive this one until {} has taken what they need",
                        code(from)
                    )),
                );
            }
            Some(_) => {}
            None => {
                let successor =
                    added.iter().find(|new| new.owner == old.owner || owner_email(new).is_some_and(|e| Some(e) == owner_email(old)));
                match successor {
                    Some(new) => risks.push(
                        Risk::new(
                            Kind::HomeVolumeRenamed,
                            new,
                            format!("the home volume is renamed: {} replaces {} of {}", code(&new.name), code(&old.name), code(&old.owner)),
                        )
                        .fact("from", &old.name)
                        .fact("to", &new.name)
                        .detail(format!("Kubernetes sees a new claim: the box starts with an empty home. {}", stays_in_cluster(old)))
                        .help(format!(
                            "to keep the data, keep the user's name (`users/{}.toml`): the home volume's name derives from it",
                            old.owner.replace('`', "'")
                        ))
                        .help(format!(
                            "or copy the data from {} to {} by hand, then {}",
                            code(&old.name),
                            code(&new.name),
                            delete_command(old)
                        )),
                    ),
                    None => {
                        let why = if users_after.contains(old.owner.as_str()) {
                            "the bundle no longer has it".to_string()
                        } else {
                            format!("{} was removed", code(&format!("users/{}.toml", old.owner)))
                        };
                        risks.push(
                            Risk::new(Kind::HomeVolumeRemoved, old, format!("the home volume {} leaves out/: {why}", code(&old.name)))
                                .fact("volume", &old.name)
                                .detail(stays_in_cluster(old))
                                .detail(format!(
                                    "Nothing mounts it any more. Adding `users/{}.toml` back attaches the same volume again.",
                                    old.owner.replace('`', "'")
                                ))
                                .help(delete_command(old)),
                        );
                    }
                }
            }
        }
    }
    risks
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::diff::resource::Resources;
    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{home, kinds, set, statefulset};

    #[test]
    fn a_removed_user_leaves_the_volume_and_the_pod_goes() {
        let before = set(vec![home("bob", "bob/pvc.yaml"), statefulset("bob", 1, "i:1", None)]);
        let risks = classify(&before, &Resources::new(), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-volume-removed", "box-removed"]);
        assert_eq!(risks[0].summary, "the home volume `bob-home` leaves out/: `users/bob.toml` was removed");
        assert!(risks[0].details[0].contains("stay in the cluster"), "{:?}", risks[0]);
        assert!(risks[0].help[0].contains("kubectl --namespace devboxes delete persistentvolumeclaim bob-home"));
    }

    #[test]
    fn a_renamed_user_gets_an_empty_home() {
        let before = set(vec![home("alice", "alice/pvc.yaml")]);
        let after = set(vec![home("alicia", "alicia/pvc.yaml")]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-volume-renamed"]);
        assert_eq!(risks[0].user, "alicia");
    }

    #[test]
    fn a_moved_bundle_warns_that_data_does_not_follow() {
        let risks =
            classify(&set(vec![home("alice", "alice/pvc.yaml")]), &set(vec![home("alice", "prod/alice/pvc.yaml")]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-volume-moved"]);
    }

    #[test]
    fn a_box_moving_between_clusters_says_so() {
        let risks = classify(
            &set(vec![home("alice", "prod/alice/pvc.yaml")]),
            &set(vec![home("alice", "staging/alice/pvc.yaml")]),
            &BTreeSet::new(),
        );
        assert_eq!(kinds(&risks), ["home-volume-moved"]);
        assert_eq!(risks[0].summary, "the box moves from cluster `prod` to cluster `staging`: its home does not follow");
        assert!(
            risks[0].details[0].starts_with("On `staging` the box starts with a new, empty home volume `alice-home`."),
            "{:?}",
            risks[0]
        );
    }
}
