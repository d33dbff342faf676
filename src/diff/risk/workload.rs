//! Downtime and restart risks of the box itself: stopped, archived or removed (its pod goes away,
//! its home may stay); moved onto Spot VMs, which can stop it at any time, or off them;
//! restarted by a new image or any other template change; rescheduled onto other nodes by a GPU
//! or architecture change.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Kind, Risk, code, containers, is_home, pod, spec, tailnet};
use crate::diff::resource::{Resource, Resources, changed_paths};

fn replicas(resource: &Resource) -> u64 {
    spec(resource, "replicas").and_then(Value::as_u64).unwrap_or(1)
}

pub(super) fn removed(
    old: &Resource,
    before: &Resources,
    after: &Resources,
    unchanged_owners: &BTreeSet<String>,
    flux_left: &BTreeSet<&str>,
) -> Risk {
    // A bundle that keeps anything without its StatefulSet is archived: the check stage allows
    // an archived box its home volume only, so what it keeps is its home.
    let home_stays = unchanged_owners.contains(&old.owner) || after.values().any(|r| is_home(r) && r.owner == old.owner);
    let pod_name = format!("{}-0", old.name);
    // Stopped in Git (replicas 0), the box has no pod to lose: only its objects go.
    let was_stopped = spec(old, "replicas").and_then(Value::as_u64) == Some(0);
    let pod_goes = if was_stopped { "it was stopped, so no pod runs" } else { "its pod goes away" };
    let and_pod = if was_stopped { String::new() } else { format!(" and its pod {}", code(&pod_name)) };
    let left = if was_stopped { "in the cluster" } else { "running" };
    if home_stays {
        let archived = Risk::new(Kind::BoxArchived, old, format!("the box is archived: {pod_goes}, the home volume stays"))
            .detail(format!("The StatefulSet leaves out/ and the sync deletes it{and_pod}. Only the home volume is kept; `state = \"running\"` brings the box back with the same home."));
        tailnet::machine_left_behind(old, archived, true)
    } else {
        let namespace = old.namespace.as_deref().unwrap_or("default");
        let owned: Vec<&Resource> = before.values().filter(|r| r.owner == old.owner).collect();
        let flux_prunes = super::engine::pruned_by_flux(&owned, flux_left);
        let summary = if was_stopped || flux_prunes {
            format!("the box is removed: {pod_goes}")
        } else {
            "the box leaves out/, but its pod keeps running until deleted by hand (only Flux prunes a removed bundle)".to_string()
        };
        let removed = Risk::new(Kind::BoxRemoved, old, summary)
            .detail(format!(
                "The whole bundle leaves out/. Flux deletes the user's Kustomization and prunes the StatefulSet{and_pod}. Argo CD deletes the user's Application but, with `preserveResourcesOnDeletion`, leaves its objects {left}."
            ))
            .help(format!(
                "with Argo CD, archive the box first (`state = \"archived\"`, merge, let it sync) and remove the user file after; or delete what is left by hand: `kubectl --namespace {namespace} delete statefulset,cronjob,service,networkpolicy,configmap,serviceaccount,secret,role,rolebinding --selector app.kubernetes.io/instance={}`",
                old.owner
            ));
        tailnet::machine_left_behind(old, removed, flux_prunes)
    }
}

pub(super) fn changed(old: &Resource, new: &Resource) -> Vec<Risk> {
    if old.kind != "StatefulSet" {
        return Vec::new();
    }
    let (was, is) = (replicas(old), replicas(new));
    // Reported whether the box runs or not: a stopped box started later would never say it.
    let spot = spot_changed(old, new, is > 0);
    if is == 0 {
        if was > 0 {
            // Without `replicas` the cluster decided ([idle], [schedule]): 1 is only the default.
            let replicas = if spec(old, "replicas").is_none() {
                "replicas → 0, the cluster's until now".to_string()
            } else {
                format!("replicas {was} → 0")
            };
            let stopped = Risk::new(Kind::BoxStopped, new, format!("the box is stopped ({replicas}): its pod is deleted, the home volume stays"))
                .fact("replicas_from", if spec(old, "replicas").is_none() { "cluster".to_string() } else { was.to_string() })
                .detail("Whatever runs in it ends: Jupyter kernels, terminals, SSH sessions. `state = \"running\"` starts it again with the same home.");
            // The replicas were the cluster's ([idle], [schedule]): 1 is only the API's default.
            let stopped = if spec(old, "replicas").is_none() {
                stopped.detail("Until now it stopped by itself and the cluster set its replicas, so it may be stopped already. From now on Git keeps it stopped: neither its owner nor its working hours can start it.")
            } else {
                stopped
            };
            return std::iter::once(stopped).chain(spot).collect();
        }
        return spot.into_iter().collect();
    }
    if was == 0 {
        return spot.into_iter().collect(); // started: nothing is lost
    }
    let (Some(old_pod), Some(new_pod)) = (pod(old), pod(new)) else { return spot.into_iter().collect() };
    let mut risks: Vec<Risk> = spot.into_iter().collect();
    let restart = "Processes and open sessions end; the home volume is kept, anything written outside it is lost.";
    let (old_images, new_images) = (images(old_pod), images(new_pod));
    for (container, image) in &new_images {
        if let Some(before) = old_images.get(container).filter(|b| *b != image) {
            risks.push(
                Risk::new(
                    Kind::ImageChanged,
                    new,
                    format!(
                        "the image of container {} changes from {} to {}: the pod restarts",
                        code(container),
                        code(before),
                        code(image)
                    ),
                )
                .fact("container", container.as_str())
                .fact("from", before.as_str())
                .fact("to", image.as_str())
                .detail(restart),
            );
        }
    }
    let (old_gpu, new_gpu) = (gpu(old_pod), gpu(new_pod));
    if old_gpu != new_gpu {
        let detail = if new_gpu.is_empty() {
            "The pod restarts on a node without a GPU.".to_string()
        } else {
            "The pod restarts on a node with that GPU, and stays Pending until one is free (GKE may need minutes to add a node, longer when GPUs are scarce).".to_string()
        };
        risks.push(
            Risk::new(
                Kind::GpuChanged,
                new,
                format!("the GPU changes from {} to {}: the pod is rescheduled", describe_gpu(&old_gpu), describe_gpu(&new_gpu)),
            )
            .fact("from", plain_gpu(&old_gpu))
            .fact("to", plain_gpu(&new_gpu))
            .detail(detail)
            .detail(restart),
        );
    }
    let (old_arch, new_arch) = (node_selector(old_pod, "kubernetes.io/arch"), node_selector(new_pod, "kubernetes.io/arch"));
    if old_arch != new_arch {
        let to = new_arch.unwrap_or("any architecture");
        risks.push(
            Risk::new(
                Kind::ArchChanged,
                new,
                format!("the architecture changes from {} to {}: the pod is rescheduled", code(old_arch.unwrap_or("any")), code(to)),
            )
            .fact("from", old_arch.unwrap_or("any"))
            .fact("to", new_arch.unwrap_or("any"))
            .detail(format!(
                "The pod restarts on a {} node; its image must have a variant for it, or the container will not start.",
                code(to)
            ))
            .detail(restart),
        );
    }
    let template_changed = spec(old, "template") != spec(new, "template");
    if risks.is_empty() && template_changed {
        let reasons = restart_reasons(spec(old, "template"), spec(new, "template"));
        risks.push(Risk::new(Kind::PodRestart, new, format!("the pod restarts: its template changes ({reasons})")).detail(restart));
    }
    risks
}

/// The node label GKE puts on Spot VMs, which the pod selects to run on one.
const SPOT_LABEL: &str = "cloud.google.com/gke-spot";

fn on_spot(resource: &Resource) -> bool {
    pod(resource).and_then(|p| node_selector(p, SPOT_LABEL)) == Some("true")
}

const PREEMPTION: &str = "Compute Engine reclaims a Spot VM whenever it needs the capacity and stops it 30 seconds after the notice; the box gets the first 15 of them, as GKE's graceful node shutdown keeps the rest for system pods.";
const LOST: &str = "Whatever runs in the box then ends: processes, terminals, SSH sessions, and Jupyter kernels with everything they held that was not saved. The home volume stays, and the pod starts again once a Spot node is free (it waits in Pending until then).";

/// The same words for every box, so that a fleet moved by `[defaults] spot` is told once.
fn spot_help(risk: Risk) -> Risk {
    risk.help("keep work on the home volume (/storage) and save often; long jobs should write checkpoints there").help(
        "to keep the box on standard VMs, remove `spot = true` from its user file (or set `spot = false` there when devbox.toml's `[defaults]` sets it)",
    )
}

/// The box moved onto Spot VMs or off them; `running` when its pod runs after the change.
fn spot_changed(old: &Resource, new: &Resource, running: bool) -> Option<Risk> {
    let (was, is) = (on_spot(old), on_spot(new));
    if was == is {
        return None;
    }
    let name = |spot: bool| if spot { "spot" } else { "standard" };
    let risk = if is {
        let risk = Risk::new(
            Kind::SpotChanged,
            new,
            "the box moves to Spot VMs: Google can stop it at any time, with about 30 seconds' notice".into(),
        )
        .detail(PREEMPTION)
        .detail(LOST);
        let risk = if running { risk.detail("The pod restarts now, on a Spot node.") } else { risk };
        spot_help(risk)
    } else {
        let risk =
            Risk::new(Kind::SpotChanged, new, "the box leaves Spot VMs: it is no longer stopped whenever Google needs the capacity".into());
        if running {
            risk.detail("The pod restarts now on a standard node, and waits in Pending until one is free. Processes and open sessions end; the home volume is kept.")
        } else {
            risk
        }
    };
    Some(risk.fact("from", name(was)).fact("to", name(is)))
}

/// A new box that runs on Spot VMs.
pub(super) fn new_on_spot(new: &Resource) -> Option<Risk> {
    if !on_spot(new) {
        return None;
    }
    let risk = Risk::new(
        Kind::SpotChanged,
        new,
        "the new box runs on Spot VMs: Google can stop it at any time, with about 30 seconds' notice".into(),
    )
    .detail(PREEMPTION)
    .detail(LOST)
    .fact("from", "none")
    .fact("to", "spot");
    Some(spot_help(risk))
}

fn images(pod: &Value) -> BTreeMap<String, String> {
    containers(pod).filter_map(|c| Some((c.get("name")?.as_str()?.to_string(), c.get("image")?.as_str()?.to_string()))).collect()
}

fn node_selector<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod.get("nodeSelector")?.get(key)?.as_str()
}

/// `(count, type)` of the GPUs a pod asks for; empty when it asks for none.
fn gpu(pod: &Value) -> Vec<(String, String)> {
    let count: Vec<String> = containers(pod)
        .filter_map(|c| c.pointer("/resources/limits")?.get("nvidia.com/gpu"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect();
    let kind = node_selector(pod, "cloud.google.com/gke-accelerator").unwrap_or("GPU");
    // A shared GPU is another node pool, and another GPU to the person: a share of one.
    let shared = match (
        node_selector(pod, "cloud.google.com/gke-gpu-sharing-strategy"),
        node_selector(pod, "cloud.google.com/gke-max-shared-clients-per-gpu"),
    ) {
        (Some(strategy), Some(clients)) => format!(" ({strategy}, {clients} per GPU)"),
        (Some(strategy), None) => format!(" ({strategy})"),
        _ => String::new(),
    };
    count.into_iter().map(|c| (c, format!("{kind}{shared}"))).collect()
}

/// `1 × nvidia-l4`, or `none`, without markup.
fn plain_gpu(gpu: &[(String, String)]) -> String {
    if gpu.is_empty() {
        return "none".into();
    }
    gpu.iter().map(|(count, kind)| format!("{count} × {kind}")).collect::<Vec<_>>().join(" + ")
}

fn describe_gpu(gpu: &[(String, String)]) -> String {
    if gpu.is_empty() {
        return "none".into();
    }
    gpu.iter().map(|(count, kind)| code(&format!("{count} × {kind}"))).collect::<Vec<_>>().join(" + ")
}

/// A few words on what changed in a pod template: `containers[devbox].env`, or the scripts it
/// mounts (the shared ConfigMap's new name, which is how a script change reaches a bundle).
fn restart_reasons(old: Option<&Value>, new: Option<&Value>) -> String {
    let paths = changed_paths(old.unwrap_or(&Value::Null), new.unwrap_or(&Value::Null));
    let mut reasons: Vec<String> = Vec::new();
    let (mounted_before, mounted_after) = (mounted_config_maps(old), mounted_config_maps(new));
    if mounted_before != mounted_after {
        let gone: Vec<&String> = mounted_before.difference(&mounted_after).collect();
        let came: Vec<&String> = mounted_after.difference(&mounted_before).collect();
        let list = |names: &[&String]| names.iter().map(|n| code(n)).collect::<Vec<_>>().join(", ");
        reasons.push(match (gone.as_slice(), came.as_slice()) {
            ([], came) => format!("it mounts ConfigMap {}", list(came)),
            (gone, []) => format!("it no longer mounts ConfigMap {}", list(gone)),
            (gone, came) => format!("the ConfigMap it mounts changes from {} to {}", list(gone), list(came)),
        });
    }
    for path in paths {
        let in_volume_source =
            path.iter().skip_while(|s| !s.starts_with("volumes")).nth(1).is_some_and(|s| s == "projected" || s == "configMap");
        if mounted_before != mounted_after && in_volume_source {
            continue; // told above, by name
        }
        let reason = if path.iter().any(|s| s.ends_with("config-hash")) {
            "the ConfigMap's scripts or sshd_config".to_string()
        } else {
            let segments: Vec<&str> = path.iter().map(String::as_str).skip_while(|s| *s == "spec").take(2).collect();
            let mut reason = segments.join(".");
            if let Some(i) = reason.rfind('[').filter(|_| reason.ends_with(']') && segments.len() > 1) {
                reason.truncate(i);
            }
            format!("`{}`", reason.replace('`', "'"))
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if reasons.len() > 4 {
        let more = reasons.len() - 3;
        reasons.truncate(3);
        reasons.push(format!("{more} more"));
    }
    reasons.join(", ")
}

/// The names of the ConfigMaps a pod template mounts, as volumes or projected sources.
fn mounted_config_maps(template: Option<&Value>) -> std::collections::BTreeSet<String> {
    let volumes = template.and_then(|t| t.get("spec")?.get("volumes")?.as_array());
    let mut names = std::collections::BTreeSet::new();
    for volume in volumes.into_iter().flatten() {
        let sources = volume.get("projected").and_then(|p| p.get("sources")?.as_array());
        for source in std::iter::once(volume).chain(sources.into_iter().flatten()) {
            if let Some(name) = source.get("configMap").and_then(|c| c.get("name")?.as_str()) {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{home, kinds, set, statefulset};

    #[test]
    fn a_stopped_box_archived_or_removed_loses_no_pod() {
        let before = set(vec![statefulset("a", 0, "i:1", None), home("a", "a/pvc.yaml"), statefulset("b", 0, "i:1", None)]);
        let after = set(vec![home("a", "a/pvc.yaml")]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["box-removed", "box-archived"]);
        assert_eq!(risks[0].summary, "the box is removed: it was stopped, so no pod runs");
        assert_eq!(risks[1].summary, "the box is archived: it was stopped, so no pod runs, the home volume stays");
        assert!(risks.iter().all(|risk| !risk.details.iter().any(|d| d.contains("its pod"))), "{risks:#?}");
        let running = classify(&set(vec![statefulset("a", 1, "i:1", None)]), &set(vec![home("a", "a/pvc.yaml")]), &BTreeSet::new());
        assert_eq!(running[0].summary, "the box is archived: its pod goes away, the home volume stays");
    }

    /// A removed box's pod goes only where Flux delivers it (its Kustomization leaves with the
    /// bundle, and Flux prunes); Argo CD keeps what a deleted Application applied.
    #[test]
    fn a_removed_running_box_keeps_its_pod_unless_flux_prunes_it() {
        let running = || statefulset("a", 1, "i:1", None);
        let argo = classify(&set(vec![running()]), &set(vec![]), &BTreeSet::new());
        assert_eq!(
            argo[0].summary,
            "the box leaves out/, but its pod keeps running until deleted by hand (only Flux prunes a removed bundle)"
        );
        let mut flux = crate::diff::risk::test_support::kustomization("a");
        flux.path = "_gitops/flux/default/kustomization-devbox-a.yaml".into();
        let flux = classify(&set(vec![running(), flux]), &set(vec![]), &BTreeSet::new());
        assert_eq!(flux[0].summary, "the box is removed: its pod goes away");
    }

    #[test]
    fn stopping_restarting_and_rescheduling() {
        let before = set(vec![statefulset("a", 1, "i:1", None), statefulset("b", 1, "i:1", None), statefulset("c", 0, "i:1", None)]);
        let after =
            set(vec![statefulset("a", 0, "i:1", None), statefulset("b", 1, "i:2", Some("nvidia-l4")), statefulset("c", 1, "i:2", None)]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["box-stopped", "gpu-changed", "image-changed"]);
        assert_eq!(risks[1].summary, "the GPU changes from none to `1 × nvidia-l4`: the pod is rescheduled");
    }

    #[test]
    fn sharing_a_gpu_is_another_gpu() {
        let old = statefulset("a", 1, "i:1", Some("nvidia-l4"));
        let mut new = old.clone();
        new.object.as_mut().unwrap()["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-gpu-sharing-strategy"] =
            json!("time-sharing");
        new.object.as_mut().unwrap()["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-max-shared-clients-per-gpu"] =
            json!("4");
        let risks = classify(&set(vec![old]), &set(vec![new]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["gpu-changed"]);
        assert_eq!(risks[0].facts["to"], "1 × nvidia-l4 (time-sharing, 4 per GPU)");
    }

    fn on_spot(mut resource: crate::diff::resource::Resource) -> crate::diff::resource::Resource {
        let pod = &mut resource.object.as_mut().unwrap()["spec"]["template"]["spec"];
        pod["nodeSelector"]["cloud.google.com/gke-spot"] = json!("true");
        pod["tolerations"] = json!([{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]);
        pod["terminationGracePeriodSeconds"] = json!(15);
        resource
    }

    #[test]
    fn moving_onto_spot_vms_says_the_box_can_stop_at_any_time() {
        let before =
            set(vec![statefulset("a", 1, "i:1", None), on_spot(statefulset("b", 1, "i:1", None)), statefulset("c", 0, "i:1", None)]);
        let after = set(vec![
            on_spot(statefulset("a", 1, "i:1", None)),
            statefulset("b", 1, "i:1", None),
            on_spot(statefulset("c", 0, "i:1", None)),
            on_spot(statefulset("d", 1, "i:1", None)),
        ]);
        let risks = classify(&before, &after, &BTreeSet::new());
        // The restart is explained, not repeated as `pod-restart`; a stopped box is told too,
        // and so is a new one.
        assert_eq!(kinds(&risks), ["spot-changed", "spot-changed", "spot-changed", "spot-changed"]);
        let by_user = |user: &str| risks.iter().find(|r| r.user == user).unwrap();
        let a = by_user("a");
        assert_eq!(a.summary, "the box moves to Spot VMs: Google can stop it at any time, with about 30 seconds' notice");
        assert!(a.details.iter().any(|d| d.contains("30 seconds") && d.contains("first 15")), "{:?}", a.details);
        assert!(a.details.iter().any(|d| d.contains("Jupyter kernels") && d.contains("home volume stays")), "{:?}", a.details);
        assert!(a.help.iter().any(|h| h.contains("remove `spot = true` from its user file")), "{:?}", a.help);
        assert_eq!((a.facts["from"].as_str(), a.facts["to"].as_str()), ("standard", "spot"));
        assert_eq!(a.level(), crate::diff::risk::Level::Downtime);
        let b = by_user("b");
        assert!(b.summary.starts_with("the box leaves Spot VMs"), "{}", b.summary);
        assert_eq!((b.facts["from"].as_str(), b.facts["to"].as_str()), ("spot", "standard"));
        assert!(!by_user("c").details.iter().any(|d| d.contains("restarts now")), "a stopped box restarts nothing");
        assert!(by_user("d").summary.starts_with("the new box runs on Spot VMs"));
    }

    #[test]
    fn any_other_template_change_restarts_the_pod() {
        let old = statefulset("a", 1, "i:1", None);
        let mut new = old.clone();
        new.object.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "EDITOR", "value": "vim"}]);
        new.object.as_mut().unwrap()["spec"]["template"]["metadata"] = json!({"annotations": {"devbox-gen.dev/config-hash": "x"}});
        let risks = classify(&set(vec![old]), &set(vec![new]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["pod-restart"]);
        assert_eq!(
            risks[0].summary,
            "the pod restarts: its template changes (the ConfigMap's scripts or sshd_config, `containers[devbox].env`)"
        );
    }

    #[test]
    fn new_scripts_are_told_by_the_name_of_the_config_map_the_pod_mounts() {
        let scripts = |name: &str| json!([{"name": "config", "projected": {"sources": [{"configMap": {"name": "a-devbox"}}, {"configMap": {"name": name}}]}}]);
        let mut old = statefulset("a", 1, "i:1", None);
        old.object.as_mut().unwrap()["spec"]["template"]["spec"]["volumes"] = scripts("devbox-scripts-0123456789");
        let mut new = old.clone();
        new.object.as_mut().unwrap()["spec"]["template"]["spec"]["volumes"] = scripts("devbox-scripts-abcdef0123");
        let risks = classify(&set(vec![old]), &set(vec![new]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["pod-restart"]);
        assert_eq!(
            risks[0].summary,
            "the pod restarts: its template changes (the ConfigMap it mounts changes from `devbox-scripts-0123456789` to `devbox-scripts-abcdef0123`)"
        );
    }
}
