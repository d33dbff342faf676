//! What a change does to the bill: for each box the PR changes, what it reserves and stores on
//! each side of the diff, and with devbox.toml's `[prices]`, what that costs a month.
//!
//! The figures come from the objects of both sides, and the plan holds only the objects that
//! differ. That is what a cost *change* needs: a StatefulSet that did not change costs the same
//! on both sides and is on neither, so a box whose home grows shows the disk it gains and
//! nothing else. It also means that a side's amount is what the changed objects cost, not the
//! fleet's bill; the delta is exact.
//!
//! All arithmetic is on integers, so no float noise reaches a report: quantities in billionths
//! (as [`Quantity`] parses them), prices in billionths of the currency, amounts as exact
//! fractions ([`Amount`]), each rounded to the cent once, when it is shown.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::resource::{Resource, Resources};
use super::risk::is_home;
use super::{Change, UserChange};
use crate::model::{Prices, Weekday};

/// A running box is billed 730 hours a month (365 × 24 / 12), as cloud price lists count.
pub(crate) const HOURS_PER_MONTH: u128 = 730;

/// What the report says of a box that stops by itself: its figures are what it reserves while
/// it runs, its price is for running all month.
const STOPS_BY_ITSELF: &str = "stops by itself (priced as always on)";
/// The same of a box that did before the change and does not after it.
const STOPPED_BY_ITSELF: &str = "stopped by itself before (priced as always on)";

const NANOS: u128 = 1_000_000_000;
const GIB: u128 = 1 << 30;

/// Where the embedded template states a box's working hours, on its StatefulSet:
/// `mon,tue,wed,thu,fri 08:00-19:00 Europe/Berlin`.
const WORKING_HOURS_ANNOTATION: &str = "devbox-gen.dev/working-hours";

/// The node label GKE gives Spot nodes, which a box selects to run on them.
const SPOT_SELECTOR: &str = "cloud.google.com/gke-spot";
const ACCELERATOR_SELECTOR: &str = "cloud.google.com/gke-accelerator";

/// What each term of an amount (a disk, a workload) is worked out in, exactly: billionths of
/// the currency (prices) × billionths of the unit (quantities) × bytes in a GiB.
const EXACT: u128 = NANOS * NANOS * GIB;
/// What an amount counts: billionths of the currency. Each term is rounded to one once, so a
/// sum of ten thousand boxes is still right to the cent, and sums up to 10^20 of any currency
/// fit (in [`EXACT`] units, a fleet priced in rupiah overflowed at 31 million a month).
const DENOMINATOR: u128 = NANOS;
const CENT: u128 = DENOMINATOR / 100;

/// An exact term, to the nearest [`DENOMINATOR`]th.
fn rounded(exact: u128) -> u128 {
    let unit = EXACT / DENOMINATOR;
    exact.saturating_add(unit / 2) / unit
}

/// `value × numerator / denominator`, rounded down, without the product overflowing first.
fn mul_div(value: u128, numerator: u128, denominator: u128) -> u128 {
    let (whole, rest) = (value / denominator, value % denominator);
    whole.saturating_mul(numerator).saturating_add(rest.saturating_mul(numerator) / denominator)
}

/// What one pod reserves: its requests, which the scheduler sets aside whether used or not,
/// and which GKE Autopilot bills.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    /// Billionths of a CPU core.
    pub cpu: u128,
    /// Billionths of a byte.
    pub memory: u128,
    /// Whole GPUs, by accelerator type.
    pub gpus: BTreeMap<String, u128>,
    /// Home volume storage, billionths of a byte.
    pub disk: u128,
}

impl Figures {
    fn add(&mut self, other: &Figures, times: u128) {
        self.cpu = self.cpu.saturating_add(other.cpu.saturating_mul(times));
        self.memory = self.memory.saturating_add(other.memory.saturating_mul(times));
        for (kind, count) in &other.gpus {
            let total = self.gpus.entry(kind.clone()).or_default();
            *total = total.saturating_add(count.saturating_mul(times));
        }
        self.disk = self.disk.saturating_add(other.disk.saturating_mul(times));
    }
}

/// One StatefulSet of a box.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Workload {
    replicas: u128,
    /// What each pod reserves (no disk).
    pod: Figures,
    spot: bool,
    /// Git leaves `spec.replicas` to the cluster: the box stops when idle or outside its
    /// working hours, and is woken (the API server's default of 1 counts it as running). How
    /// many hours it runs is the cluster's to know, so 730 hours is what it costs at most.
    stops_by_itself: bool,
    /// Of a box that stops by itself: its working hours, when it is kept running and so the
    /// least it runs.
    working_hours: Option<WorkingHours>,
}

/// A box's working hours, as its StatefulSet states them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkingHours {
    /// `mon-fri 08:00-19:00 Europe/Berlin`, as the risks write them.
    pub text: String,
    /// How long they last in a week (a time zone's week has 168 hours, its clock changes aside).
    minutes_per_week: u128,
}

impl WorkingHours {
    /// `DAY,DAY,... HH:MM-HH:MM ZONE`, the stop later than the start (as validation has it);
    /// `None` for anything else, which then counts as no working hours.
    fn parse(annotation: &str) -> Option<Self> {
        use serde::Deserialize as _;
        let [days, hours, zone] = annotation.split_whitespace().collect::<Vec<_>>()[..] else { return None };
        let days = days
            .split(',')
            .map(|day| Weekday::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(day)).ok())
            .collect::<Option<BTreeSet<Weekday>>>()?;
        let (start, stop) = hours.split_once('-')?;
        let minutes = |clock: &str| {
            crate::autostop::clock(clock).ok().map(|t| u128::from(t.hour().unsigned_abs()) * 60 + u128::from(t.minute().unsigned_abs()))
        };
        let daily = minutes(stop)?.checked_sub(minutes(start)?).filter(|m| *m > 0)?;
        let days: Vec<Weekday> = days.into_iter().collect();
        Some(Self {
            text: format!("{} {start}-{stop} {zone}", crate::autostop::days_text(&days)),
            minutes_per_week: daily * days.len() as u128,
        })
    }
}

/// What one side of the diff holds of a box.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Side {
    /// Its StatefulSets, when this side holds them (they changed).
    workloads: Vec<Workload>,
    /// Storage of its home volumes on this side, billionths of a byte.
    disk: u128,
    /// Part of `disk`: home volumes that leave out/ but stay in the cluster, prune being
    /// disabled for them, so they are still billed.
    kept: u128,
    /// `workloads` left out/ with their bundle, but nothing prunes them: they run on, billed,
    /// until someone deletes them.
    left_running: bool,
}

impl Side {
    fn running(&self) -> bool {
        self.workloads.iter().any(|w| w.replicas > 0)
    }

    /// What the side is billed for: the pods that run, and the disks.
    pub(crate) fn billed(&self) -> Figures {
        let mut figures = Figures { disk: self.disk, ..Figures::default() };
        for workload in &self.workloads {
            figures.add(&workload.pod, workload.replicas);
        }
        figures
    }

    /// Whether a pod that runs is one that stops by itself, so that the side's price, at 730
    /// hours a month, is the most it costs.
    pub(crate) fn stops_by_itself(&self) -> bool {
        self.workloads.iter().any(|w| w.replicas > 0 && w.stops_by_itself)
    }

    /// The working hours of a pod that runs and stops by itself, if it has them.
    pub(crate) fn working_hours(&self) -> Option<&WorkingHours> {
        self.workloads.iter().filter(|w| w.replicas > 0).find_map(|w| w.working_hours.as_ref())
    }

    /// Whether its workloads left out/ with their bundle and run on, as nothing prunes them.
    pub(crate) fn left_running(&self) -> bool {
        self.left_running && self.running()
    }

    /// Whether the pods that run are all on Spot nodes.
    pub(crate) fn spot(&self) -> bool {
        let mut running = self.workloads.iter().filter(|w| w.replicas > 0).peekable();
        running.peek().is_some() && running.all(|w| w.spot)
    }
}

/// A box's state on one side, as far as the diff shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Stopped,
    Archived,
    /// No such user on this side.
    Absent,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Archived => "archived",
            State::Absent => "absent",
        }
    }
}

/// A box whose billed figures differ between the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BoxCost {
    pub user: String,
    pub before: Side,
    pub after: Side,
    /// Before and after; `None` when its StatefulSet did not change (the state did not either).
    pub states: Option<(State, State)>,
}

impl BoxCost {
    /// "new, running", "stopped, disk only", "moves to Spot": what happens to the box, before
    /// the figures that change.
    fn event(&self) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        let only_disk = |state: State| matches!(state, State::Stopped | State::Archived);
        match self.states {
            Some((State::Absent, after)) => words.push(format!("new, {}", after.as_str())),
            Some((_, State::Absent)) if self.after.left_running() => {
                words.push("removed, left running until deleted by hand (only Flux prunes a removed bundle)".into());
            }
            Some((_, State::Absent)) => words.push("removed".into()),
            _ if self.after.left_running() => {
                words.push("the old box left running until deleted by hand (only Flux prunes a bundle that leaves its directory)".into());
            }
            Some((before, after)) if before != after => {
                let word = match (before, after) {
                    (State::Archived, State::Running) => "unarchived, running",
                    (State::Archived, State::Stopped) => "unarchived, stopped",
                    (_, State::Running) => "started",
                    (_, State::Stopped) => "stopped",
                    _ => "archived",
                };
                words.push(word.into());
                if only_disk(after) {
                    words.push("disk only".into());
                }
            }
            _ => {}
        }
        if self.after.stops_by_itself() {
            words.push(STOPS_BY_ITSELF.into());
        } else if self.before.stops_by_itself() {
            words.push(STOPPED_BY_ITSELF.into());
        }
        match (self.before.working_hours(), self.after.working_hours()) {
            (Some(was), Some(is)) if was != is => words.push(format!("working hours {} → {}", was.text, is.text)),
            (None, Some(is)) => words.push(format!("working hours {}", is.text)),
            (Some(was), None) if self.after.running() => words.push(format!("no working hours (were {})", was.text)),
            _ => {}
        }
        if self.after.kept > 0 {
            words.push(format!("{} GiB home volume kept (not pruned)", gib(self.after.kept)));
        }
        let (was, is) = (self.before.spot(), self.after.spot());
        if self.before.running() && self.after.running() && was != is {
            words.push(if is { "moves to Spot" } else { "leaves Spot" }.into());
        }
        words
    }

    /// The figures that change, signed.
    fn changes(&self) -> Vec<String> {
        figure_changes(&self.before.billed(), &self.after.billed())
    }

    /// `new, running: +8.25 CPU, +32.25 GiB memory, +1 × nvidia-l4, +100 GiB disk`.
    pub(crate) fn what(&self) -> String {
        let (event, changes) = (self.event().join(", "), self.changes().join(", "));
        match (event.is_empty(), changes.is_empty()) {
            (false, false) => format!("{event}: {changes}"),
            (true, _) => changes,
            (false, true) => event,
        }
    }

    /// Whether its price on either side is for running all month although it stops by itself.
    pub(crate) fn priced_as_always_on(&self) -> bool {
        self.before.stops_by_itself() || self.after.stops_by_itself()
    }

    /// Whether what it is billed for changes (not merely, say, the CPU of a stopped box), or
    /// the least it runs: its working hours.
    fn billed_changes(&self) -> bool {
        let spot_moves = self.before.running() && self.after.running() && self.before.spot() != self.after.spot();
        self.before.billed() != self.after.billed()
            || spot_moves
            || self.before.working_hours() != self.after.working_hours()
            || self.is_removed()
    }

    /// A removed box is worth a line even when nothing it costs goes away (nothing prunes it).
    fn is_removed(&self) -> bool {
        matches!(self.states, Some((_, State::Absent)))
    }
}

/// The figures that change, signed: `+8 CPU`, `−16 GiB memory`, `+1 × nvidia-l4`.
fn figure_changes(before: &Figures, after: &Figures) -> Vec<String> {
    let mut parts = Vec::new();
    if before.cpu != after.cpu {
        parts.push(format!("{} CPU", signed_decimal(before.cpu, after.cpu, NANOS, 3)));
    }
    if before.memory != after.memory {
        parts.push(format!("{} GiB memory", signed_decimal(before.memory, after.memory, NANOS * GIB, 2)));
    }
    let kinds: BTreeSet<&String> = before.gpus.keys().chain(after.gpus.keys()).collect();
    for kind in kinds {
        let (was, is) = (before.gpus.get(kind).copied().unwrap_or(0), after.gpus.get(kind).copied().unwrap_or(0));
        if was != is {
            parts.push(format!("{} × {kind}", signed_decimal(was, is, 1, 0)));
        }
    }
    if before.disk != after.disk {
        parts.push(format!("{} GiB disk", signed_decimal(before.disk, after.disk, NANOS * GIB, 2)));
    }
    parts
}

/// The boxes whose billed figures change, by user: from the objects of each side (only those
/// that differ), for the users in `users` (the devbox.toml group is nobody's box).
pub(crate) fn box_costs(before: &Resources, after: &Resources, users: &[UserChange]) -> Vec<BoxCost> {
    // By owner once, not a scan of every object per user: a fleet-wide change has thousands.
    let (before_by_owner, after_by_owner) = (by_owner(before), by_owner(after));
    let flux_left = super::risk::engine::flux_left(before, after);
    let destinations = super::risk::platform::Destinations::new(before, after);
    let none = Vec::new();
    users
        .iter()
        .filter(|u| !u.is_shared() && !u.is_hand_written())
        .filter_map(|u| {
            let old = before_by_owner.get(u.user.as_str()).unwrap_or(&none);
            let new = after_by_owner.get(u.user.as_str()).unwrap_or(&none);
            let mut sides = (side(old), side(new));
            // A home volume that leaves out/, or its cluster's directory, stays in the cluster
            // when its claim disables pruning, or when nothing prunes what its bundle leaves
            // behind (see below), and so does its bill.
            let nothing_prunes = u.change == Change::Removed && !super::risk::engine::pruned_by_flux(old, &flux_left);
            let leaves = |r: &Resource| after.get(&r.id).is_none_or(|new| destinations.another_cluster(r, new));
            let stays = |r: &Resource| super::risk::home::prune_protected(r) || nothing_prunes;
            for claim in old.iter().filter(|r| is_home(r) && leaves(r) && stays(r)) {
                let size = storage(claim);
                sides.1.disk = sides.1.disk.saturating_add(size);
                sides.1.kept = sides.1.kept.saturating_add(size);
            }
            // A removed bundle's objects stay in the cluster unless Flux delivered it: Argo CD's
            // ApplicationSet keeps what a deleted Application applied
            // (`preserveResourcesOnDeletion`), and nothing else deletes anything. So its pod
            // runs on, and is billed, until someone deletes it.
            if nothing_prunes {
                sides.1.workloads.clone_from(&sides.0.workloads);
                sides.1.left_running = true;
            }
            // The same holds for a box that moves to another cluster: the old cluster's
            // Application goes, its box does not, and both run until someone deletes the old
            // one. Flux prunes what the Kustomization it removes applied.
            if u.change == Change::Changed {
                let left: Vec<Workload> = old
                    .iter()
                    .filter(|r| r.kind == "StatefulSet")
                    .filter(|r| after.get(&r.id).is_some_and(|new| destinations.another_cluster(r, new)))
                    .filter_map(|r| r.object.as_ref().map(workload))
                    .filter(|w| w.replicas > 0)
                    .collect();
                let removed: Vec<&Resource> = old.iter().copied().filter(|r| !after.contains_key(&r.id)).collect();
                if !left.is_empty() && !super::risk::engine::pruned_by_flux(&removed, &flux_left) {
                    sides.1.workloads.extend(left);
                    sides.1.left_running = true;
                }
            }
            let state = |side: &Side, present: bool| match (side.workloads.is_empty(), present) {
                (_, false) => State::Absent,
                (true, true) => State::Archived,
                (false, true) if side.running() => State::Running,
                (false, true) => State::Stopped,
            };
            // Without a StatefulSet on either side, the state is only known for a user who comes
            // or goes (a new archived box); otherwise it did not change.
            let known = !sides.0.workloads.is_empty() || !sides.1.workloads.is_empty() || u.change != Change::Changed;
            let states = known.then(|| (state(&sides.0, u.change != Change::Added), state(&sides.1, u.change != Change::Removed)));
            let cost = BoxCost { user: u.user.clone(), before: sides.0, after: sides.1, states };
            cost.billed_changes().then_some(cost)
        })
        .collect()
}

fn by_owner(set: &Resources) -> BTreeMap<&str, Vec<&Resource>> {
    let mut owned: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for resource in set.values() {
        owned.entry(resource.owner.as_str()).or_default().push(resource);
    }
    owned
}

fn side(objects: &[&Resource]) -> Side {
    let mut side = Side::default();
    for resource in objects {
        if resource.kind == "StatefulSet"
            && let Some(object) = &resource.object
        {
            side.workloads.push(workload(object));
        } else if is_home(resource) {
            side.disk = side.disk.saturating_add(storage(resource));
        }
    }
    side
}

fn storage(claim: &Resource) -> u128 {
    let requested = claim.object.as_ref().and_then(|o| o.get("spec")).and_then(|s| s.pointer("/resources/requests/storage"));
    requested.map_or(0, |v| crate::render::contract::quantity(v).nanos())
}

/// What a StatefulSet bills: its replicas, its pod's requests, whether it is on Spot.
fn workload(object: &crate::render::Object) -> Workload {
    let spec = object.get("spec");
    let set = spec.and_then(|s| s.get("replicas"));
    let replicas = set.map_or(1, |r| r.as_u64().unwrap_or(0));
    let pod = spec.and_then(|s| s.pointer("/template/spec")).unwrap_or(&Value::Null);
    let selector = |key: &str| pod.get("nodeSelector").and_then(|s| s.get(key)).and_then(Value::as_str);
    let requests = crate::render::contract::pod_requests(pod);
    let gpus = requests.gpus.nanos() / NANOS;
    let kind = selector(ACCELERATOR_SELECTOR).unwrap_or("GPU");
    Workload {
        replicas: u128::from(replicas),
        pod: Figures {
            cpu: requests.cpu.nanos(),
            memory: requests.memory.nanos(),
            gpus: if gpus > 0 { BTreeMap::from([(kind.to_string(), gpus)]) } else { BTreeMap::new() },
            disk: 0,
        },
        spot: selector(SPOT_SELECTOR) == Some("true"),
        stops_by_itself: set.is_none(),
        working_hours: set
            .is_none()
            .then(|| object.get("metadata")?.get("annotations")?.get(WORKING_HOURS_ANNOTATION)?.as_str().and_then(WorkingHours::parse))
            .flatten(),
    }
}

// --- prices ----------------------------------------------------------------------------------

/// devbox.toml's `[prices]`, exact: billionths of the currency per unit. Spot prices left out
/// are the on-demand ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PriceList {
    pub currency: String,
    storage_gib_month: u128,
    on_demand: Rates,
    spot: Rates,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rates {
    cpu_hour: u128,
    memory_gib_hour: u128,
    gpu_hour: BTreeMap<String, u128>,
}

impl PriceList {
    pub(crate) fn new(prices: &Prices) -> Self {
        let on_demand = Rates {
            cpu_hour: exact(prices.cpu_hour),
            memory_gib_hour: exact(prices.memory_gib_hour),
            gpu_hour: prices.gpu_hour.iter().map(|(kind, price)| (kind.clone(), exact(*price))).collect(),
        };
        let spot = match &prices.spot {
            None => on_demand.clone(),
            Some(spot) => Rates {
                cpu_hour: spot.cpu_hour.map_or(on_demand.cpu_hour, exact),
                memory_gib_hour: spot.memory_gib_hour.map_or(on_demand.memory_gib_hour, exact),
                gpu_hour: on_demand
                    .gpu_hour
                    .clone()
                    .into_iter()
                    .chain(spot.gpu_hour.iter().map(|(kind, price)| (kind.clone(), exact(*price))))
                    .collect(),
            },
        };
        Self {
            currency: prices.currency.clone().unwrap_or_else(|| "USD".into()),
            storage_gib_month: exact(prices.storage_gib_month),
            on_demand,
            spot,
        }
    }

    /// A side's monthly amount, or the GPU types it runs that have no price. `hours` says
    /// how long a pod that stops by itself runs: all month, or only in its working hours.
    fn monthly(&self, side: &Side, hours: Hours) -> Result<Amount, BTreeSet<String>> {
        let mut total = rounded(side.disk.saturating_mul(self.storage_gib_month));
        let mut unpriced = BTreeSet::new();
        for workload in side.workloads.iter().filter(|w| w.replicas > 0) {
            let rates = if workload.spot { &self.spot } else { &self.on_demand };
            // A month's share of the week's working hours: minutes × (730 / 168) / 60.
            let (numerator, denominator) = match (&workload.working_hours, hours) {
                (Some(working), Hours::WorkingHoursOnly) => (working.minutes_per_week.saturating_mul(HOURS_PER_MONTH), HOURS_PER_WEEK * 60),
                _ => (HOURS_PER_MONTH, 1),
            };
            let mut hourly = workload.pod.cpu.saturating_mul(rates.cpu_hour).saturating_mul(GIB);
            hourly = hourly.saturating_add(workload.pod.memory.saturating_mul(rates.memory_gib_hour));
            for (kind, count) in &workload.pod.gpus {
                match rates.gpu_hour.get(kind) {
                    Some(price) => hourly = hourly.saturating_add(count.saturating_mul(*price).saturating_mul(NANOS * GIB)),
                    None => {
                        unpriced.insert(kind.clone());
                    }
                }
            }
            total = total.saturating_add(rounded(mul_div(hourly.saturating_mul(workload.replicas), numerator, denominator)));
        }
        if unpriced.is_empty() { Ok(Amount(i128::try_from(total).unwrap_or(i128::MAX))) } else { Err(unpriced) }
    }
}

/// How long a box that stops by itself is priced as running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hours {
    /// 730 hours a month: the most it runs.
    AllMonth,
    /// Its working hours, when it has them: the least it runs (all month without them).
    WorkingHoursOnly,
}

const HOURS_PER_WEEK: u128 = 168;

/// A price from devbox.toml in billionths (validation refuses what is negative or not finite;
/// here those are zero rather than a panic).
fn exact(price: f64) -> u128 {
    if price.is_finite() && price > 0.0 {
        // Within a billionth of the decimal written: f64 holds 15 significant digits, and
        // prices have far fewer. `as` saturates.
        (price * 1e9).round() as u128
    } else {
        0
    }
}

/// Money: a number of 1/[`DENOMINATOR`]ths of the currency. Each amount shown is
/// rounded once, from this, so it is right to the cent (a total may then differ by a cent from
/// the sum of the rounded lines, as on an invoice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Amount(i128);

impl Amount {
    /// To the nearest cent, halves away from zero.
    pub(crate) fn cents(self) -> i128 {
        let cents = i128::try_from(self.0.unsigned_abs().saturating_add(CENT / 2) / CENT).unwrap_or(i128::MAX);
        cents * self.0.signum()
    }

    pub(crate) fn magnitude(self) -> u128 {
        self.0.unsigned_abs()
    }
}

impl std::ops::Add for Amount {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl std::ops::Sub for Amount {
    type Output = Self;

    fn sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

// --- the report ------------------------------------------------------------------------------

/// One box in the report, priced when devbox.toml has `[prices]`.
#[derive(Clone, Debug)]
pub(crate) struct Item<'a> {
    pub cost: &'a BoxCost,
    /// A month before and after; `None` without prices, or when its price is unknown.
    pub monthly: Option<(Amount, Amount)>,
    /// GPU types it runs that have no price.
    pub unpriced: BTreeSet<String>,
    /// A month before and after if it runs only in its working hours; `None` unless priced
    /// and one side has working hours.
    pub in_working_hours: Option<(Amount, Amount)>,
}

impl Item<'_> {
    pub(crate) fn delta(&self) -> Option<Amount> {
        self.monthly.map(|(before, after)| after - before)
    }

    /// The change if the box runs only in its working hours.
    pub(crate) fn delta_in_working_hours(&self) -> Option<Amount> {
        self.in_working_hours.map(|(before, after)| after - before)
    }
}

/// What the change does to the boxes' bill, or to their resources without prices.
#[derive(Clone, Debug)]
pub(crate) struct Report<'a> {
    pub prices: Option<&'a PriceList>,
    /// By user.
    pub items: Vec<Item<'a>>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(boxes: &'a [BoxCost], prices: Option<&'a PriceList>) -> Self {
        let items = boxes
            .iter()
            // Without prices, a box that only moves to Spot changes no resource.
            .filter(|b| prices.is_some() || b.before.billed() != b.after.billed() || b.is_removed())
            .map(|cost| match prices {
                None => Item { cost, monthly: None, unpriced: BTreeSet::new(), in_working_hours: None },
                Some(prices) => match (prices.monthly(&cost.before, Hours::AllMonth), prices.monthly(&cost.after, Hours::AllMonth)) {
                    (Ok(before), Ok(after)) => {
                        let has_hours = cost.before.working_hours().is_some() || cost.after.working_hours().is_some();
                        let least =
                            (prices.monthly(&cost.before, Hours::WorkingHoursOnly), prices.monthly(&cost.after, Hours::WorkingHoursOnly));
                        let in_working_hours = match least {
                            (Ok(before), Ok(after)) if has_hours => Some((before, after)),
                            _ => None,
                        };
                        Item { cost, monthly: Some((before, after)), unpriced: BTreeSet::new(), in_working_hours }
                    }
                    (before, after) => {
                        let unpriced = before.err().into_iter().chain(after.err()).flatten().collect();
                        Item { cost, monthly: None, unpriced, in_working_hours: None }
                    }
                },
            })
            .collect();
        Self { prices, items }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A month before and after, over the boxes with a known price.
    pub(crate) fn totals(&self) -> (Amount, Amount) {
        self.items.iter().filter_map(|i| i.monthly).fold((Amount(0), Amount(0)), |(b, a), (before, after)| (b + before, a + after))
    }

    /// The totals if the boxes with working hours run only then (the others as in
    /// [`Report::totals`]); `None` when no box has working hours.
    pub(crate) fn totals_in_working_hours(&self) -> Option<(Amount, Amount)> {
        self.items.iter().any(|i| i.in_working_hours.is_some()).then(|| {
            self.items
                .iter()
                .filter_map(|i| i.in_working_hours.or(i.monthly))
                .fold((Amount(0), Amount(0)), |(b, a), (before, after)| (b + before, a + after))
        })
    }

    /// The users left out of the totals: their price is unknown.
    pub(crate) fn unpriced(&self) -> Vec<&Item<'a>> {
        self.items.iter().filter(|i| !i.unpriced.is_empty()).collect()
    }

    /// The figures of all the boxes together, before and after.
    pub(crate) fn figures(&self) -> (Figures, Figures) {
        let (mut before, mut after) = (Figures::default(), Figures::default());
        for item in &self.items {
            before.add(&item.cost.before.billed(), 1);
            after.add(&item.cost.after.billed(), 1);
        }
        (before, after)
    }

    /// `+8.25 CPU, +32.25 GiB memory, +1 × nvidia-l4, +100 GiB disk`, or `no change`.
    pub(crate) fn resource_change(&self) -> String {
        let (before, after) = self.figures();
        let changes = figure_changes(&before, &after);
        if changes.is_empty() { "no change in total".into() } else { changes.join(", ") }
    }

    /// `+$520.10`, `−1,207.65 EUR`.
    pub(crate) fn money(&self, amount: Amount) -> String {
        money(amount.cents(), self.prices.map_or("USD", |p| p.currency.as_str()))
    }
}

/// Signed money with the currency: `$` for US dollars (the usual case, and the most
/// readable), the ISO code after the amount for any other; U+2212 for minus, as in print.
fn money(cents: i128, currency: &str) -> String {
    let sign = match cents.signum() {
        1 => "+",
        -1 => "\u{2212}",
        _ => "±",
    };
    let magnitude = cents.unsigned_abs();
    let amount = format!("{}.{:02}", thousands(magnitude / 100), magnitude % 100);
    if currency == "USD" { format!("{sign}${amount}") } else { format!("{sign}{amount} {currency}") }
}

/// Cents as a JSON number in the currency: `520.1`. Exact: a whole number of cents divided by
/// 100 is the closest f64 to the decimal, which serde_json prints as the decimal.
pub(crate) fn json_amount(amount: Amount) -> Value {
    // i128 → f64 rounds only beyond 2^53 cents, far beyond any bill.
    serde_json::Number::from_f64(amount.cents() as f64 / 100.0).map_or(Value::Null, Value::Number)
}

/// Figures as JSON numbers: cores, GiB (exact binary fractions), whole GPUs.
pub(crate) fn json_figures(figures: &Figures) -> Value {
    serde_json::json!({
        "cpu": ratio(figures.cpu as f64, NANOS as f64),
        "memory_gib": ratio(figures.memory as f64, (NANOS * GIB) as f64),
        "gpus": figures.gpus,
        "disk_gib": ratio(figures.disk as f64, (NANOS * GIB) as f64),
    })
}

/// The signed change of each figure, as [`json_figures`] (GPUs that do not change left out).
pub(crate) fn json_delta(before: &Figures, after: &Figures) -> Value {
    let signed = |before: u128, after: u128| after as f64 - before as f64;
    let gpus: BTreeMap<&String, i128> = before
        .gpus
        .keys()
        .chain(after.gpus.keys())
        .map(|k| {
            let count = |f: &Figures| i128::try_from(f.gpus.get(k).copied().unwrap_or(0)).unwrap_or(i128::MAX);
            (k, count(after) - count(before))
        })
        .filter(|(_, d)| *d != 0)
        .collect();
    serde_json::json!({
        "cpu": ratio(signed(before.cpu, after.cpu), NANOS as f64),
        "memory_gib": ratio(signed(before.memory, after.memory), (NANOS * GIB) as f64),
        "gpus": gpus,
        "disk_gib": ratio(signed(before.disk, after.disk), (NANOS * GIB) as f64),
    })
}

/// One division, so the result is the closest f64 to the exact ratio (`8.25`, never
/// `8.250000000000002`); whole values print as integers.
fn ratio(numerator: f64, denominator: f64) -> Value {
    let value = numerator / denominator;
    if value.fract() == 0.0 && value.abs() < 9e15 {
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `after − before` over `unit`, signed, to `places` decimals (half away from zero), without
/// trailing zeros: `+8.25`, `−16`.
fn signed_decimal(before: u128, after: u128, unit: u128, places: u32) -> String {
    let (sign, magnitude) = if after >= before { ("+", after - before) } else { ("\u{2212}", before - after) };
    format!("{sign}{}", decimal(magnitude, unit, places))
}

/// `value / unit` to `places` decimals (half up), without trailing zeros.
fn decimal(value: u128, unit: u128, places: u32) -> String {
    let scale = 10u128.pow(places);
    let scaled = value.saturating_mul(scale).saturating_add(unit / 2) / unit;
    let (whole, fraction) = (scaled / scale, scaled % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = places as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `100`, `0.25`: billionths of a byte in GiB.
fn gib(nanos: u128) -> String {
    decimal(nanos, NANOS * GIB, 2)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(text: &str) -> u128 {
        crate::quantity::Quantity::parse(text).unwrap().nanos()
    }

    fn running(cpu: &str, memory: &str, gpus: &[(&str, u128)], spot: bool) -> Workload {
        let gpus = gpus.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        Workload {
            replicas: 1,
            pod: Figures { cpu: q(cpu), memory: q(memory), gpus, disk: 0 },
            spot,
            stops_by_itself: false,
            working_hours: None,
        }
    }

    fn box_cost(states: Option<(State, State)>, before: Vec<Workload>, after: Vec<Workload>) -> BoxCost {
        BoxCost {
            user: "a".into(),
            before: Side { workloads: before, ..Side::default() },
            after: Side { workloads: after, ..Side::default() },
            states,
        }
    }

    fn prices() -> PriceList {
        PriceList::new(&Prices {
            currency: None,
            cpu_hour: 0.0316,
            memory_gib_hour: 0.0042,
            storage_gib_month: 0.17,
            gpu_hour: BTreeMap::from([("nvidia-l4".to_string(), 0.71)]),
            spot: Some(crate::model::SpotPrices { cpu_hour: Some(0.0095), memory_gib_hour: None, gpu_hour: BTreeMap::new() }),
        })
    }

    #[test]
    fn a_running_box_is_730_hours_of_compute_and_a_month_of_disk() {
        let side = Side { workloads: vec![running("8", "32Gi", &[("nvidia-l4", 1)], false)], disk: q("100Gi"), ..Side::default() };
        // 730 × (8 × 0.0316 + 32 × 0.0042 + 0.71) + 100 × 0.17 = 730 × 1.0972 + 17 = 817.956
        assert_eq!(prices().monthly(&side, Hours::AllMonth).map(Amount::cents), Ok(81_796));
        let stopped = Side { workloads: vec![Workload { replicas: 0, ..running("8", "32Gi", &[("nvidia-l4", 1)], false) }], ..side };
        assert_eq!(prices().monthly(&stopped, Hours::AllMonth).map(Amount::cents), Ok(1_700), "disk only");
    }

    #[test]
    fn millicores_and_mebibytes_are_exact() {
        // 730 × (0.25 × 0.0316 + 0.25 × 0.0042) = 6.5335: 653.35 cents, rounded to 653.
        let side = Side { workloads: vec![running("250m", "256Mi", &[], false)], ..Side::default() };
        assert_eq!(prices().monthly(&side, Hours::AllMonth).map(Amount::cents), Ok(653));
        // 730 × 2.5 × 0.0316 = 57.67 exactly.
        let side = Side { workloads: vec![running("2500m", "0", &[], false)], ..Side::default() };
        assert_eq!(prices().monthly(&side, Hours::AllMonth).map(Amount::cents), Ok(5_767));
    }

    #[test]
    fn spot_prices_fall_back_to_on_demand_key_by_key() {
        // CPU at the Spot price, memory and the GPU on demand: 730 × (4 × 0.0095 + 16 × 0.0042 + 0.71) = 595.096.
        let side = Side { workloads: vec![running("4", "16Gi", &[("nvidia-l4", 1)], true)], ..Side::default() };
        assert_eq!(prices().monthly(&side, Hours::AllMonth).map(Amount::cents), Ok(59_510));
    }

    #[test]
    fn a_gpu_without_a_price_makes_the_amount_unknown() {
        let side = Side { workloads: vec![running("4", "16Gi", &[("nvidia-h100-80gb", 8)], false)], ..Side::default() };
        assert_eq!(prices().monthly(&side, Hours::AllMonth), Err(BTreeSet::from(["nvidia-h100-80gb".to_string()])));
    }

    #[test]
    fn money_is_signed_grouped_and_in_its_currency() {
        assert_eq!(money(31_245, "USD"), "+$312.45");
        assert_eq!(money(-20_765, "USD"), "\u{2212}$207.65");
        assert_eq!(money(123_456_789, "EUR"), "+1,234,567.89 EUR");
        assert_eq!(money(0, "USD"), "±$0.00");
        assert_eq!(money(-5, "USD"), "\u{2212}$0.05");
        assert_eq!(json_amount(Amount(52_010 * CENT as i128)), json!(520.1));
        assert_eq!(json_amount(Amount(-(CENT as i128) / 2)), json!(-0.01), "half a cent rounds away from zero");
        assert_eq!(json_amount(Amount(-(CENT as i128) / 2 + 1)), json!(0.0));
    }

    #[test]
    fn prices_are_read_to_the_billionth() {
        assert_eq!(exact(0.0316), 31_600_000);
        assert_eq!(exact(0.1 + 0.2), 300_000_000);
        assert_eq!((exact(-1.0), exact(f64::NAN), exact(f64::INFINITY)), (0, 0, 0));
    }

    #[test]
    fn figures_are_shown_rounded_and_signed() {
        assert_eq!(signed_decimal(q("4"), q("8250m"), NANOS, 3), "+4.25");
        assert_eq!(signed_decimal(q("32Gi"), q("16Gi"), NANOS * GIB, 2), "\u{2212}16");
        assert_eq!(decimal(q("100Mi"), NANOS * GIB, 2), "0.1");
        assert_eq!(
            json_figures(&Figures { cpu: q("8250m"), memory: q("100Mi"), gpus: BTreeMap::new(), disk: q("1Ti") }),
            json!({"cpu": 8.25, "memory_gib": 0.09765625, "gpus": {}, "disk_gib": 1024})
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn says_what_happens_to_the_box_then_what_changes() {
        let stopped = Workload { replicas: 0, ..running("2", "8Gi", &[], false) };
        let started = box_cost(Some((State::Archived, State::Running)), vec![], vec![running("2", "8Gi", &[], false)]);
        assert_eq!(started.what(), "unarchived, running: +2 CPU, +8 GiB memory");
        let restarted = box_cost(Some((State::Stopped, State::Running)), vec![stopped.clone()], vec![running("2", "8Gi", &[], false)]);
        assert_eq!(restarted.what(), "started: +2 CPU, +8 GiB memory");
        let spot =
            box_cost(Some((State::Running, State::Running)), vec![running("2", "8Gi", &[], true)], vec![running("4", "8Gi", &[], false)]);
        assert_eq!(spot.what(), "leaves Spot: +2 CPU");
        let idle = box_cost(
            Some((State::Stopped, State::Stopped)),
            vec![stopped.clone()],
            vec![Workload { pod: Figures { cpu: q("8"), ..stopped.pod.clone() }, ..stopped.clone() }],
        );
        assert!(!idle.billed_changes(), "a stopped box's size costs nothing");
        let gpus =
            box_cost(None, vec![running("1", "0", &[("nvidia-tesla-t4", 2)], false)], vec![running("1", "0", &[("nvidia-l4", 1)], false)]);
        assert_eq!(gpus.what(), "+1 × nvidia-l4, −2 × nvidia-tesla-t4");
        let idle_stops = Workload { stops_by_itself: true, ..running("2", "8Gi", &[], false) };
        let new_idle = box_cost(Some((State::Absent, State::Running)), vec![], vec![idle_stops.clone()]);
        assert_eq!(new_idle.what(), "new, running, stops by itself (priced as always on): +2 CPU, +8 GiB memory");
        let now_stopped = box_cost(Some((State::Running, State::Stopped)), vec![idle_stops], vec![stopped]);
        assert_eq!(now_stopped.what(), "stopped, disk only, stopped by itself before (priced as always on): −2 CPU, −8 GiB memory");
    }

    #[test]
    fn a_pod_reserves_its_containers_and_its_sidecars() {
        let object = json!({"spec": {"replicas": 1, "template": {"spec": {
            "nodeSelector": {ACCELERATOR_SELECTOR: "nvidia-l4", SPOT_SELECTOR: "true"},
            "initContainers": [
                {"name": "setup", "resources": {"requests": {"cpu": "16", "memory": "1Gi"}}},
                {"name": "proxy", "restartPolicy": "Always", "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}}},
            ],
            "containers": [
                {"name": "devbox", "resources": {"requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}, "limits": {"cpu": "8"}}},
                {"name": "tailscale", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
            ],
        }}}});
        let workload = workload(object.as_object().unwrap());
        assert_eq!(
            workload,
            Workload {
                replicas: 1,
                pod: Figures {
                    cpu: q("16"),
                    memory: q("32Gi") + q("768Mi"),
                    gpus: BTreeMap::from([("nvidia-l4".to_string(), 1)]),
                    disk: 0
                },
                spot: true,
                stops_by_itself: false,
                working_hours: None,
            }
        );
        let mut autostopping = object.clone();
        autostopping["spec"].as_object_mut().unwrap().remove("replicas");
        autostopping["metadata"] = json!({"annotations": {WORKING_HOURS_ANNOTATION: "mon,tue,wed,thu,fri 08:00-19:00 Europe/Berlin"}});
        let workload = super::workload(autostopping.as_object().unwrap());
        assert_eq!((workload.replicas, workload.stops_by_itself), (1, true), "the API server's default, and the cluster's to change");
        assert_eq!(
            workload.working_hours.map(|h| (h.text, h.minutes_per_week)),
            Some(("mon-fri 08:00-19:00 Europe/Berlin".into(), 5 * 11 * 60))
        );
        // Git sets the replicas: the hours decide nothing, whatever the annotation says.
        let mut pinned = autostopping.clone();
        pinned["spec"]["replicas"] = json!(1);
        assert_eq!(super::workload(pinned.as_object().unwrap()).working_hours, None);
    }

    #[test]
    fn working_hours_are_read_as_the_template_writes_them_or_not_at_all() {
        let minutes = |text: &str| WorkingHours::parse(text).map(|h| h.minutes_per_week);
        assert_eq!(minutes("sat,sun 10:30-12:00 UTC"), Some(2 * 90));
        assert_eq!(WorkingHours::parse("mon,wed,fri 09:00-17:00 Asia/Tokyo").unwrap().text, "mon,wed,fri 09:00-17:00 Asia/Tokyo");
        for broken in [
            "",
            "mon-fri 08:00-19:00 UTC",
            "mon 19:00-08:00 UTC",
            "mon 08:00-08:00 UTC",
            "mon 8:00-19:00 UTC",
            "mon 08:00-19:00",
            "moon 08:00-19:00 UTC",
        ] {
            assert_eq!(minutes(broken), None, "{broken:?}");
        }
    }

    /// Working hours are the least a box that stops by itself runs: its price for them alone is
    /// the week's hours as a share of the month, 55 of 168 × 730 = 238.99 hours here.
    #[test]
    fn a_box_with_working_hours_is_priced_for_them_alone_too() {
        let hours = WorkingHours::parse("mon,tue,wed,thu,fri 08:00-19:00 Europe/Berlin");
        let scheduled = Workload { stops_by_itself: true, working_hours: hours, ..running("2", "8Gi", &[], false) };
        let side = Side { workloads: vec![scheduled.clone()], disk: q("10Gi"), ..Side::default() };
        // 730 × (2 × 0.0316 + 8 × 0.0042) = 70.664, and 10 × 0.17 = 1.70.
        assert_eq!(prices().monthly(&side, Hours::AllMonth).map(Amount::cents), Ok(7_236));
        // 238.988 × 0.0968 = 23.134, and the disk, all month.
        assert_eq!(prices().monthly(&side, Hours::WorkingHoursOnly).map(Amount::cents), Ok(2_483));
        let always_on = Side { workloads: vec![running("2", "8Gi", &[], false)], ..side.clone() };
        assert_eq!(
            prices().monthly(&always_on, Hours::WorkingHoursOnly),
            prices().monthly(&always_on, Hours::AllMonth),
            "hours of a box Git runs count for nothing"
        );
        let hours_change = box_cost(
            Some((State::Running, State::Running)),
            vec![scheduled.clone()],
            vec![Workload { working_hours: WorkingHours::parse("mon,tue,wed,thu,fri 08:00-17:00 Europe/Berlin"), ..scheduled }],
        );
        assert!(hours_change.billed_changes(), "new hours change the least it costs");
        assert_eq!(
            hours_change.what(),
            "stops by itself (priced as always on), working hours mon-fri 08:00-19:00 Europe/Berlin → mon-fri 08:00-17:00 Europe/Berlin"
        );
    }

    /// Priced in rupiah, a big box for its working hours overflowed the exact product, and the
    /// amount stopped growing at about 31 million; it now grows with the box.
    #[test]
    fn amounts_in_a_currency_of_small_units_do_not_overflow() {
        let rupiah = PriceList::new(&Prices {
            currency: Some("IDR".into()),
            cpu_hour: 506.0,
            memory_gib_hour: 67.0,
            storage_gib_month: 2_800.0,
            gpu_hour: BTreeMap::new(),
            spot: None,
        });
        let hours = WorkingHours::parse("mon,tue,wed,thu,fri 08:00-19:00 Asia/Jakarta");
        let monthly = |cpu: &str| {
            let workload = Workload { stops_by_itself: true, working_hours: hours.clone(), ..running(cpu, "0", &[], false) };
            let side = Side { workloads: vec![workload], ..Side::default() };
            rupiah.monthly(&side, Hours::WorkingHoursOnly).map(Amount::cents).unwrap()
        };
        // 55 hours a week is 55 × 730 / 168 = 238.988… hours a month: × 506 × CPUs.
        for cpus in [160, 230, 100_000] {
            let expected = (55.0 * 730.0 / 168.0 * 506.0 * cpus as f64 * 100.0).round() as i128;
            assert!((monthly(&cpus.to_string()) - expected).abs() <= 1, "{cpus} CPUs: {} vs {expected}", monthly(&cpus.to_string()));
        }
        // Ten thousand such boxes, summed, still fit.
        let one = Amount(i128::try_from(1_000_000_000_u128 * 50_000_000_000).unwrap());
        assert_eq!((0..10_000).fold(Amount::default(), |sum, _| sum + one).cents(), 50_000_000_000 * 10_000 * 100);
    }
}
