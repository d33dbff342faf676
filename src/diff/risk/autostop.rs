//! Boxes that stop by themselves (`[idle]`, `[schedule]`): when a box starts or ceases to stop
//! when idle, and when its idle window or working hours change.
//!
//! Read from what the template rendered, not from the user files, so a custom template is
//! judged by what it really emits: the policy is the ConfigMap's `idle.json` (what idle.py
//! reads); whether Git still decides if the box runs is the StatefulSet's `spec.replicas`;
//! what starts it in the morning is the bundle's CronJob. The facts these rest on are idle.py's
//! and the template's: the policy is re-read in place (the kubelet updates a mounted ConfigMap
//! without a restart, and the config hash leaves `idle.json` out); the watcher's own start
//! counts as activity; idleness already counted is measured against a new window at once.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{Kind, Risk, code, containers, plain, pod, spec};
use crate::autostop::human;
use crate::diff::resource::{Resource, Resources, changed_paths};
use crate::model::Weekday;

/// The ConfigMap key that holds a box's policy; idle.py stops the box only when it is there.
const POLICY_KEY: &str = "idle.json";

/// Working hours as idle.py reads them.
#[derive(Clone, Debug, PartialEq)]
struct Hours {
    timezone: String,
    /// `mon-fri`.
    days: String,
    start: String,
    stop: String,
}

impl Hours {
    fn of(schedule: &Value) -> Option<Self> {
        let text = |key: &str| schedule.get(key).and_then(Value::as_str).map(plain);
        let days = schedule.get("days")?;
        let days = match serde_json::from_value::<Vec<Weekday>>(days.clone()) {
            Ok(days) => crate::autostop::days_text(&days),
            // Not the embedded template's day names: shown as written.
            Err(_) => days.as_array()?.iter().map(|d| d.as_str().map_or_else(|| d.to_string(), plain)).collect::<Vec<_>>().join(","),
        };
        Some(Self { timezone: text("timezone")?, days, start: text("start")?, stop: text("stop")? })
    }

    /// `mon-fri 08:00-19:00 Europe/Berlin`.
    fn text(&self) -> String {
        format!("{} {}-{} {}", self.days, self.start, self.stop, self.timezone)
    }
}

/// A box's `idle.json`.
#[derive(Clone, Debug, PartialEq)]
struct Policy {
    /// Seconds without activity before the box stops.
    after: u64,
    hours: Option<Hours>,
    /// The rest: what counts as activity (`ssh`, `cpu_percent`...).
    activity: Map<String, Value>,
}

impl Policy {
    fn of(config_map: &Resource) -> Option<Self> {
        if config_map.kind != "ConfigMap" {
            return None;
        }
        let text = config_map.object.as_ref()?.get("data")?.get(POLICY_KEY)?.as_str()?;
        // idle.py refuses a policy without a window, and then stops nothing.
        let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) else { return None };
        let after = doc.remove("after_seconds")?.as_u64()?;
        let hours = doc.remove("schedule").as_ref().and_then(Hours::of);
        Some(Self { after, hours, activity: doc })
    }

    /// A number of what counts as activity: `ssh.grace_seconds`.
    fn threshold(&self, path: &str) -> Option<u64> {
        let mut value = self.activity.get(path.split('.').next()?)?;
        for key in path.split('.').skip(1) {
            value = value.get(key)?;
        }
        value.as_u64()
    }

    /// What keeps the box running, with the policy's own thresholds.
    fn activity_text(&self) -> String {
        let ssh = match (self.threshold("ssh.grace_seconds"), self.threshold("ssh.bytes_per_minute")) {
            (Some(grace), Some(bytes)) => format!(
                "SSH traffic (a new connection for its first {}, then more than {bytes} bytes a minute from the client: an editor left connected sends only keepalives, which do not count)",
                human(grace)
            ),
            _ => "SSH traffic (keepalives of an editor left connected do not count)".to_string(),
        };
        let cpu = self
            .threshold("cpu_percent")
            .map_or_else(|| "a process using CPU".to_string(), |p| format!("a process using more than {p}% of a CPU"));
        let gpu = self.threshold("gpu_percent").map_or_else(|| "GPU use".to_string(), |p| format!("a GPU busy {p}% or more"));
        format!(
            "What counts as activity: {ssh}; Jupyter in use (requests, kernel messages, terminals, a busy kernel); {cpu}; {gpu}; or a hold: `touch -d '+3 hours' ~/.devbox-hold` in the box keeps it running until then."
        )
    }
}

fn hours_text(hours: Option<&Hours>) -> String {
    hours.map_or_else(|| "none".to_string(), Hours::text)
}

/// The facts every kind of this family has, raw: the window in seconds (`never`) and the hours
/// (`none`) on each side.
fn policy_facts(risk: Risk, was: Option<&Policy>, is: Option<&Policy>) -> Risk {
    let after = |p: Option<&Policy>| p.map_or_else(|| "never".to_string(), |p| p.after.to_string());
    let hours = |p: Option<&Policy>| hours_text(p.and_then(|p| p.hours.as_ref()));
    risk.fact("after_from", after(was)).fact("after_to", after(is)).fact("hours_from", hours(was)).fact("hours_to", hours(is))
}

/// The first object of `kind` of each owner.
fn by_owner<'a>(resources: &'a Resources, kind: &str) -> BTreeMap<&'a str, &'a Resource> {
    let mut found = BTreeMap::new();
    for resource in resources.values().filter(|r| r.kind == kind) {
        found.entry(resource.owner.as_str()).or_insert(resource);
    }
    found
}

/// `spec.replicas`; `None` when the StatefulSet leaves it to the cluster.
fn replicas(statefulset: &Resource) -> Option<u64> {
    spec(statefulset, "replicas").and_then(Value::as_u64)
}

fn container_names(statefulset: &Resource) -> BTreeSet<&str> {
    pod(statefulset).map(|p| containers(p).filter_map(|c| c.get("name")?.as_str()).collect()).unwrap_or_default()
}

/// `` `idle` ``, `` `idle`, `x` ``: the containers on one side only.
fn only_in(on: &Resource, not_on: &Resource) -> Vec<String> {
    let others = container_names(not_on);
    container_names(on).into_iter().filter(|c| !others.contains(c)).map(code).collect()
}

/// The pod of a running box restarts: it ran before and its template changes.
fn restarts(old: Option<&Resource>, new: Option<&Resource>) -> bool {
    match (old, new) {
        (Some(old), Some(new)) => replicas(old) != Some(0) && spec(old, "template") != spec(new, "template"),
        _ => false,
    }
}

/// The CronJob's `schedule` and `timeZone`, as facts.
fn wake_facts(risk: Risk, cron_job: Option<&Resource>) -> Risk {
    let Some(cron_job) = cron_job else { return risk };
    let field = |key: &str| spec(cron_job, key).and_then(Value::as_str).unwrap_or("").to_string();
    risk.fact("wake_schedule", field("schedule")).fact("wake_timezone", field("timeZone"))
}

/// How the box was before the change.
#[derive(Clone, Copy, PartialEq)]
enum Was {
    /// No bundle before.
    New,
    /// Stopped in Git (`replicas: 0`): nothing ran.
    Stopped,
    /// Archived: no StatefulSet, nothing ran.
    Archived,
    Running,
}

/// Every risk of boxes whose policy appears, changes or goes. `before` and `after` may hold only
/// the resources that differ; `unchanged_owners` are the users who keep others.
pub(super) fn changed(before: &Resources, after: &Resources, unchanged_owners: &BTreeSet<String>) -> Vec<Risk> {
    let (old_boxes, new_boxes) = (by_owner(before, "StatefulSet"), by_owner(after, "StatefulSet"));
    let (old_wakes, new_wakes) = (by_owner(before, "CronJob"), by_owner(after, "CronJob"));
    let existed: BTreeSet<&str> = before.values().map(|r| r.owner.as_str()).chain(unchanged_owners.iter().map(String::as_str)).collect();
    let mut risks = Vec::new();
    for config_map in after.values().filter(|r| r.kind == "ConfigMap") {
        let owner = config_map.owner.as_str();
        let (was, is) = (before.get(&config_map.id).and_then(Policy::of), Policy::of(config_map));
        if was == is {
            continue;
        }
        let (old_box, new_box) = (old_boxes.get(owner).copied(), new_boxes.get(owner).copied());
        // A box stopped in Git has no policy; `box-stopped` says what that does.
        if new_box.is_some_and(|b| replicas(b) == Some(0)) {
            continue;
        }
        let state = match old_box {
            _ if !existed.contains(owner) => Was::New,
            Some(old) if replicas(old) == Some(0) => Was::Stopped,
            // The StatefulSet arrives: the box was archived.
            None if new_box.is_some() => Was::Archived,
            _ => Was::Running,
        };
        let wake = new_wakes.get(owner).copied();
        let resource = new_box.unwrap_or(config_map);
        match (&was, &is) {
            (None, Some(is)) => risks.push(enabled(resource, is, state, old_box, new_box, wake)),
            (Some(was), None) => risks.push(disabled(resource, was, old_box, new_box, old_wakes.contains_key(owner))),
            (Some(was), Some(is)) => risks.push(policy_changed(config_map, was, is, wake)),
            (None, None) => {}
        }
    }
    risks
}

/// `after 2h without activity`, `after 2h without activity outside working hours (mon-fri ...)`.
fn when_it_stops(policy: &Policy) -> String {
    let after = format!("after {} without activity", human(policy.after));
    match &policy.hours {
        Some(hours) => format!("{after} outside working hours ({})", hours.text()),
        None => after,
    }
}

/// The box did not stop by itself, and now does.
fn enabled(
    resource: &Resource,
    policy: &Policy,
    was: Was,
    old: Option<&Resource>,
    new: Option<&Resource>,
    wake: Option<&Resource>,
) -> Risk {
    let summary = match was {
        Was::New => format!("the new box stops by itself {}", when_it_stops(policy)),
        Was::Stopped | Was::Archived => format!("the box starts, and from now on stops by itself {}", when_it_stops(policy)),
        Was::Running => format!("the box now stops by itself {}", when_it_stops(policy)),
    };
    let mut risk = Risk::new(Kind::AutostopEnabled, resource, summary)
        .detail(policy.activity_text())
        .detail("When it stops, its pod is deleted and the home volume stays: processes, terminals, SSH sessions and Jupyter kernels end.");
    if let Some(hours) = &policy.hours {
        let start = if wake.is_some() { format!("a CronJob starts it at {} if it is stopped, and ", hours.start) } else { String::new() };
        risk = risk.detail(format!(
            "On {} from {} to {} ({}) {start}it is kept running whatever its activity; outside those hours it stops once {} pass without activity.",
            hours.days,
            hours.start,
            hours.stop,
            hours.timezone,
            human(policy.after)
        ));
    }
    if was == Was::Stopped {
        // An applier that sets a field to the value another manager gave it shares the field,
        // and one that stops setting it leaves it to the others (structured-merge-diff,
        // merge/update.go; "Server-Side Apply" in the Kubernetes docs).
        risk = risk.detail(format!(
            "Under Flux, a box that had stopped itself before it was set to `stopped` stays stopped: Flux applies server-side, and the field manager that scaled it to 0 (`devbox-gen-idle`, or `kubectl`'s) still owns `spec.replicas` when Git stops setting it. Argo CD's client-side apply removes the field, and the box starts.{}",
            match (&policy.hours, wake.is_some()) {
                (Some(hours), true) => format!(" Its CronJob starts it at {} on a working day in any case.", hours.start),
                _ => String::new(),
            }
        ));
    }
    if restarts(old, new) {
        let added = old.zip(new).map(|(old, new)| only_in(new, old)).unwrap_or_default();
        let what = if added.is_empty() { String::new() } else { format!(", to add the container {} that stops it", added.join(", ")) };
        risk = risk.detail(format!(
            "The pod restarts once now{what}: processes and open sessions end, the home volume is kept. The idle window counts from the new pod's start."
        ));
    }
    if let Some(new) = new {
        risk = match replicas(new) {
            None => risk.detail(
                "Git no longer sets the box's replicas (the StatefulSet has no `spec.replicas`): whether it runs is the cluster's to decide. Argo CD and Flux leave the field alone, so a sync neither starts a box that stopped itself nor reports it as drift.",
            ),
            Some(n) => risk
                .detail(format!(
                    "The StatefulSet still sets `spec.replicas: {n}`: Argo CD's self-heal, or Flux at its next reconciliation, starts the box again soon after it stops itself."
                ))
                .help("remove `spec.replicas` from the StatefulSet in the template, so that Git leaves running or stopped to the cluster"),
        };
    }
    let risk = risk
        .help("to keep it running through a long job that uses no CPU, or a meeting: `touch -d '+3 hours' ~/.devbox-hold` in the box")
        .help("to start it once it has stopped itself: `devbox-gen wake NAME` (the user's name) prints the command");
    wake_facts(policy_facts(risk, None, Some(policy)), wake)
}

/// The box stopped by itself, and no longer does.
fn disabled(resource: &Resource, policy: &Policy, old: Option<&Resource>, new: Option<&Resource>, had_wake: bool) -> Risk {
    let mut changes = vec![format!("idle window {} → never", human(policy.after))];
    if let Some(hours) = &policy.hours {
        changes.push(format!("working hours {} → none", hours.text()));
    }
    let mut risk = Risk::new(
        Kind::AutostopDisabled,
        resource,
        format!("the box no longer stops by itself ({}): it runs until Git stops it", changes.join(", ")),
    );
    if let Some(n) = new.and_then(replicas).filter(|n| *n > 0) {
        risk = risk.detail(format!(
            "The StatefulSet sets `spec.replicas: {n}` again: if the box has stopped itself (idle, or outside working hours), the next sync starts it."
        ));
    }
    if restarts(old, new) {
        let removed = old.zip(new).map(|(old, new)| only_in(old, new)).unwrap_or_default();
        let what = if removed.is_empty() { String::new() } else { format!(", to remove the container {}", removed.join(", ")) };
        risk = risk
            .detail(format!("If it is running, its pod restarts once{what}: processes and open sessions end, the home volume is kept."));
    }
    if had_wake {
        risk = risk.detail("Nothing starts it in the morning any more: the CronJob that did leaves with the working hours.");
    }
    let risk = risk
        .detail("It runs, and its CPU, memory and GPU are billed, around the clock until `state = \"stopped\"`.")
        .help("to keep stopping it when idle, keep `[idle] after` in its user file (or `[defaults] idle` in devbox.toml)");
    policy_facts(risk, Some(policy), None)
}

/// `` `cpu_percent` 10 → 5 ``: the thresholds of what counts as activity that change.
fn activity_changes(was: &Policy, is: &Policy) -> Vec<String> {
    let (old, new) = (Value::Object(was.activity.clone()), Value::Object(is.activity.clone()));
    let value = |doc: &Value, path: &[String]| {
        let mut v = doc;
        for key in path {
            match v.get(key) {
                Some(next) => v = next,
                None => return "none".to_string(),
            }
        }
        v.as_str().map_or_else(|| v.to_string(), plain)
    };
    changed_paths(&old, &new)
        .iter()
        .map(|path| format!("{} {} → {}", code(&path.join(".")), value(&old, path), value(&new, path)))
        .collect()
}

/// The window, the hours or the thresholds change; the box stops by itself before and after.
fn policy_changed(config_map: &Resource, was: &Policy, is: &Policy, wake: Option<&Resource>) -> Risk {
    let mut changes = Vec::new();
    if was.after != is.after {
        changes.push(format!("idle window {} → {}", human(was.after), human(is.after)));
    }
    if was.hours != is.hours {
        changes.push(format!("working hours {} → {}", hours_text(was.hours.as_ref()), hours_text(is.hours.as_ref())));
    }
    let thresholds = activity_changes(was, is);
    if !thresholds.is_empty() {
        changes.push(format!("what counts as activity: {}", thresholds.join(", ")));
    }
    let mut risk = Risk::new(Kind::IdleChanged, config_map, format!("the box's autostop changes ({}): nothing restarts", changes.join("; ")))
        .detail("idle.py re-reads idle.json in place: the kubelet updates the mounted ConfigMap within a minute or two, and the new policy applies to the running pod.");
    if is.after < was.after {
        risk = risk.detail(format!(
            "Idleness already counted is measured against the new window: a box idle for {} or more when the update arrives stops at once.",
            human(is.after)
        ));
    }
    match (&was.hours, &is.hours) {
        (None, Some(hours)) => {
            let start =
                if wake.is_some() { format!("a CronJob starts the box at {} if it is stopped, and ", hours.start) } else { String::new() };
            risk = risk.detail(format!(
                "On {} from {} to {} ({}) {start}it is kept running whatever its activity.",
                hours.days, hours.start, hours.stop, hours.timezone
            ));
        }
        (Some(_), None) => {
            risk = risk.detail(format!(
                "Nothing starts the box in the morning any more (its CronJob leaves), and no hours keep it running: it stops after {} without activity at any time.",
                human(is.after)
            ));
        }
        (Some(_), Some(hours)) if was.hours != is.hours => {
            risk = risk.detail(format!(
                "From now on it is kept running on {} from {} to {} ({}){}.",
                hours.days,
                hours.start,
                hours.stop,
                hours.timezone,
                if wake.is_some() { format!(", and started at {} if it is stopped", hours.start) } else { String::new() }
            ));
        }
        _ => {}
    }
    wake_facts(policy_facts(risk, Some(was), Some(is)), wake)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use crate::diff::resource::Resource;
    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{config_map, home, kinds, set, statefulset};

    fn policy(after: u64, hours: Option<(&str, &str)>) -> serde_json::Value {
        let schedule = hours.map(
            |(start, stop)| json!({"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"], "start": start, "stop": stop}),
        );
        json!({"after_seconds": after, "schedule": schedule, "interval_seconds": 60, "ssh": {"port": 2222, "grace_seconds": 900, "bytes_per_minute": 4096},
               "jupyter": {"port": 8888}, "cpu_percent": 10, "gpu_percent": 5})
    }

    /// The StatefulSet of a box that stops by itself: an `idle` container, no replicas.
    fn autostopping(owner: &str) -> Resource {
        let mut resource = statefulset(owner, 1, "i:1", None);
        let spec = &mut resource.object.as_mut().unwrap()["spec"];
        spec.as_object_mut().unwrap().remove("replicas");
        spec["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "idle", "image": "curl"}));
        resource
    }

    #[test]
    fn enabling_says_when_the_box_stops_and_explains_the_restart() {
        let before = set(vec![statefulset("a", 1, "i:1", None), config_map("a", None)]);
        let after = set(vec![autostopping("a"), config_map("a", Some(policy(7200, Some(("08:00", "19:00")))))]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["autostop-enabled"], "the restart is told once, by the autostop risk");
        let risk = &risks[0];
        assert_eq!(
            risk.summary,
            "the box now stops by itself after 2h without activity outside working hours (mon-fri 08:00-19:00 Europe/Berlin)"
        );
        assert_eq!(risk.resource, "StatefulSet/devboxes/a");
        assert!(
            risk.details.iter().any(|d| d.starts_with("The pod restarts once now, to add the container `idle` that stops it")),
            "{:?}",
            risk.details
        );
        assert!(
            risk.details.iter().any(|d| d.contains("more than 4096 bytes a minute") && d.contains("10% of a CPU")),
            "{:?}",
            risk.details
        );
        assert!(risk.details.iter().any(|d| d.starts_with("Git no longer sets the box's replicas")), "{:?}", risk.details);
        assert!(risk.help.iter().any(|h| h.contains("`devbox-gen wake NAME`")), "{:?}", risk.help);
        assert_eq!((risk.facts["after_from"].as_str(), risk.facts["after_to"].as_str()), ("never", "7200"));
        assert_eq!(risk.facts["hours_to"], "mon-fri 08:00-19:00 Europe/Berlin");
    }

    #[test]
    fn a_template_that_keeps_the_replicas_is_told_the_sync_undoes_the_stop() {
        let mut kept = autostopping("a");
        kept.object.as_mut().unwrap()["spec"]["replicas"] = json!(1);
        let before = set(vec![statefulset("a", 1, "i:1", None), config_map("a", None)]);
        let risks = classify(&before, &set(vec![kept, config_map("a", Some(policy(7200, None)))]), &BTreeSet::new());
        assert_eq!(risks[0].summary, "the box now stops by itself after 2h without activity");
        assert!(risks[0].details.iter().any(|d| d.starts_with("The StatefulSet still sets `spec.replicas: 1`")), "{:?}", risks[0].details);
    }

    #[test]
    fn a_new_window_or_new_hours_restart_nothing() {
        let before = set(vec![config_map("a", Some(policy(7200, Some(("08:00", "19:00")))))]);
        let after = set(vec![config_map("a", Some(policy(1800, Some(("09:00", "17:00")))))]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["idle-changed"]);
        assert_eq!(
            risks[0].summary,
            "the box's autostop changes (idle window 2h → 30m; working hours mon-fri 08:00-19:00 Europe/Berlin → mon-fri 09:00-17:00 Europe/Berlin): nothing restarts"
        );
        assert!(
            risks[0].details.iter().any(|d| d.contains("a box idle for 30m or more when the update arrives stops at once")),
            "{:?}",
            risks[0].details
        );
        let longer = set(vec![config_map("a", Some(policy(14_400, Some(("08:00", "19:00")))))]);
        let risks = classify(&before, &longer, &BTreeSet::new());
        assert_eq!(risks[0].summary, "the box's autostop changes (idle window 2h → 4h): nothing restarts");
        assert!(!risks[0].details.iter().any(|d| d.contains("stops at once")), "a longer window stops nothing early");
        let mut thresholds = policy(7200, Some(("08:00", "19:00")));
        thresholds["cpu_percent"] = json!(25);
        let risks = classify(&before, &set(vec![config_map("a", Some(thresholds))]), &BTreeSet::new());
        assert_eq!(risks[0].summary, "the box's autostop changes (what counts as activity: `cpu_percent` 10 → 25): nothing restarts");
    }

    #[test]
    fn a_policy_without_a_window_stops_nothing() {
        let mut windowless = policy(7200, None);
        windowless.as_object_mut().unwrap().remove("after_seconds");
        let before = set(vec![config_map("a", None)]);
        assert!(classify(&before, &set(vec![config_map("a", Some(windowless))]), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn removing_it_says_git_runs_the_box_again() {
        let before = set(vec![autostopping("a"), config_map("a", Some(policy(7200, None)))]);
        let after = set(vec![statefulset("a", 1, "i:1", None), config_map("a", None)]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["autostop-disabled"]);
        assert_eq!(risks[0].summary, "the box no longer stops by itself (idle window 2h → never): it runs until Git stops it");
        assert!(risks[0].details.iter().any(|d| d.starts_with("The StatefulSet sets `spec.replicas: 1` again")), "{:?}", risks[0].details);
        assert!(risks[0].details.iter().any(|d| d.contains("to remove the container `idle`")), "{:?}", risks[0].details);
    }

    #[test]
    fn stopping_new_and_stopped_boxes() {
        // Stopped in Git: the policy goes, and `box-stopped` alone tells it.
        let before = set(vec![autostopping("a"), config_map("a", Some(policy(7200, None)))]);
        let after = set(vec![statefulset("a", 0, "i:1", None), config_map("a", None)]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["box-stopped"]);
        // Its replicas were the cluster's, not 1.
        assert_eq!(
            risks[0].summary,
            "the box is stopped (replicas → 0, the cluster's until now): its pod is deleted, the home volume stays"
        );
        assert_eq!(risks[0].facts["replicas_from"], "cluster");
        // A stopped box started with a window starts, and then stops by itself; a new one too.
        let before = set(vec![statefulset("b", 0, "i:1", None), config_map("b", None)]);
        let after = set(vec![
            autostopping("b"),
            config_map("b", Some(policy(7200, None))),
            autostopping("c"),
            config_map("c", Some(policy(5400, None))),
        ]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["autostop-enabled", "autostop-enabled"]);
        assert_eq!(risks[0].summary, "the box starts, and from now on stops by itself after 2h without activity");
        assert_eq!(risks[1].summary, "the new box stops by itself after 1h30m without activity");
        assert!(!risks.iter().flat_map(|r| &r.details).any(|d| d.contains("restarts once")), "nothing was running");
        // Only a box stopped in Git may still be held at 0 by another field manager under Flux.
        let held = |risk: &crate::diff::risk::Risk| risk.details.iter().any(|d| d.starts_with("Under Flux, a box that had stopped itself"));
        assert!(held(&risks[0]), "{:?}", risks[0].details);
        assert!(!held(&risks[1]), "a new box: {:?}", risks[1].details);
        // Un-archived: its StatefulSet is created anew, and no one else owns its replicas.
        let before = set(vec![home("d", "d/persistentvolumeclaim-d-home.yaml")]);
        let after =
            set(vec![home("d", "d/persistentvolumeclaim-d-home.yaml"), autostopping("d"), config_map("d", Some(policy(7200, None)))]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["autostop-enabled"]);
        assert_eq!(risks[0].summary, "the box starts, and from now on stops by itself after 2h without activity");
        assert!(!held(&risks[0]), "{:?}", risks[0].details);
    }
}
