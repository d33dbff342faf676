//! Rules of the fields ML boxes add: shared memory, read-only datasets and shared GPUs.
//!
//! `spot` has no rule of its own: Compute Engine offers "the same machine types and options" as
//! Spot VMs as it does as standard ones (GKE's "Spot VMs" concepts page), every accelerator this
//! version knows included, and whether a zone has Spot capacity for one right now cannot be told
//! from a file.

use super::Finding;
use super::fields::parse_quantity;
use crate::quantity::Quantity;

const MI: u128 = 1 << 20;
const GI: u128 = 1 << 30;

/// What containerd and Docker mount at /dev/shm when the pod mounts nothing there (64 MiB).
const RUNTIME_SHM: u128 = 64 * MI;

/// The units of sizes in bytes that people mean: a shared-memory size in `G` is 7% short of the
/// `Gi` everyone else in the file writes.
const BINARY_SUFFIXES: &[&str] = &["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// `shm`: a size in binary units, more than the runtime gives without it.
pub(super) fn shm(value: &str) -> Result<(), Finding> {
    if let Some(number) = value.strip_suffix('m') {
        return Err(Finding::error(format!("`{value}` means {number} thousandths of a byte")).help(format!("did you mean `{number}Mi`?")));
    }
    let quantity = parse_quantity(value, "memory")?;
    let suffix = value.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if !BINARY_SUFFIXES.contains(&suffix) {
        let number = &value[..value.len() - suffix.len()];
        let finding = Finding::error(format!("`{value}` is not in binary units: shared memory is sized like memory, in Mi or Gi"))
            .label("not Ki, Mi, Gi or Ti");
        let decimal = ["k", "M", "G", "T", "P", "E"].contains(&suffix) && !number.is_empty();
        return Err(if decimal {
            finding.help(format!("did you mean `{number}{}i`?", suffix.to_ascii_uppercase()))
        } else {
            finding.help(format!("write it like `\"8Gi\"` or `\"512Mi\"` ({} is {})", value, binary(quantity.whole_units(), Round::Down)))
        });
    }
    if quantity.whole_units() < RUNTIME_SHM {
        return Err(Finding::error(format!("`{value}` is less than the 64Mi the container runtime gives /dev/shm without `shm`"))
            .label("too small")
            .help("remove `shm` to keep the runtime's 64Mi, or ask for more, like `\"2Gi\"`"));
    }
    Ok(())
}

/// How much of `memory` the processes keep when `shm` is taken: a quarter, at least 1Gi. The
/// shared memory is a tmpfs whose pages are charged to the container's memory cgroup, so a
/// full /dev/shm and the processes that fill it (DataLoader workers, the training loop, Jupyter
/// kernels) share one limit; a box that crosses it is OOM-killed. 1Gi is what Jupyter, sshd and
/// a Python interpreter with PyTorch imported take before any batch; a quarter scales that with
/// the box, as its workloads grow with it.
fn reserve(memory: u128) -> u128 {
    GI.max(memory.div_ceil(4))
}

/// Why `shm` does not fit in `memory`, with the largest `shm` and the smallest memory that fit;
/// `None` when it fits, or when either value is not a size (other rules report that).
struct NoRoom {
    shm: u128,
    memory: u128,
    max_shm: u128,
    min_memory: u128,
}

fn no_room(shm: &str, memory: &str) -> Option<NoRoom> {
    let (shm, memory) = (Quantity::parse(shm).ok()?.whole_units(), Quantity::parse(memory).ok()?.whole_units());
    let reserve = reserve(memory);
    if shm.saturating_add(reserve) <= memory {
        return None;
    }
    // The least memory m with m - max(1Gi, m/4) >= shm.
    let min_memory = shm.saturating_add(GI).max(shm.saturating_mul(4).div_ceil(3));
    Some(NoRoom { shm, memory, max_shm: memory.saturating_sub(reserve), min_memory })
}

const WHY: &str = "/dev/shm is memory (a tmpfs): what is written there counts against the container's memory limit, and a box whose processes and shared memory together pass `resources.memory` is OOM-killed, Jupyter kernels and all";
const RULE: &str = "`shm` must leave a quarter of the memory, and at least 1Gi, to the processes";

/// `shm` (at its key) against the memory the box gets.
pub(super) fn shm_fits(shm: &str, memory: &str) -> Result<(), Finding> {
    let Some(room) = no_room(shm, memory) else { return Ok(()) };
    let message = if room.shm >= room.memory {
        format!("`shm = \"{shm}\"` does not fit in the box's {memory} of memory")
    } else {
        format!(
            "`shm = \"{shm}\"` leaves {} of the box's {memory} of memory to everything else",
            binary(room.memory - room.shm, Round::Down)
        )
    };
    let min_memory = binary(room.min_memory, Round::Up);
    let fix = if room.max_shm >= RUNTIME_SHM {
        format!(
            "with {memory} of memory, `shm` can be at most `\"{}\"` ({RULE}): lower `shm`, or raise `resources.memory` to at least `\"{min_memory}\"`",
            binary(room.max_shm, Round::Down)
        )
    } else {
        format!(
            "a box with {memory} of memory has no room for shared memory ({RULE}): raise `resources.memory` to at least `\"{min_memory}\"`, or remove `shm`"
        )
    };
    Err(Finding::error(message).label("more shared memory than the box can hold").help(WHY).help(fix))
}

/// The box's own `resources.memory` (at its key) against the `shm` of `[defaults]`.
pub(super) fn memory_fits_default_shm(memory: &str, shm: &str) -> Result<(), Finding> {
    let Some(room) = no_room(shm, memory) else { return Ok(()) };
    let min_memory = binary(room.min_memory, Round::Up);
    let fix = if room.max_shm >= RUNTIME_SHM {
        format!(
            "raise `resources.memory` to at least `\"{min_memory}\"`, or give this box less shared memory with `shm = \"{}\"` at most ({RULE})",
            binary(room.max_shm, Round::Down)
        )
    } else {
        format!("raise `resources.memory` to at least `\"{min_memory}\"` ({RULE})")
    };
    Err(Finding::error(format!("the box's {memory} of memory has no room for `shm = \"{shm}\"` from devbox.toml's `[defaults]`"))
        .label("too little for the default shared memory")
        .help(WHY)
        .help(fix))
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// Bytes in the largest of Gi and Mi that keeps them whole after rounding; what a person would
/// write in the file.
fn binary(bytes: u128, round: Round) -> String {
    let in_unit = |unit: u128| match round {
        Round::Down => bytes / unit,
        Round::Up => bytes.div_ceil(unit),
    };
    if bytes >= GI && (bytes.is_multiple_of(GI) || matches!(round, Round::Up) || bytes >= 16 * GI) {
        format!("{}Gi", in_unit(GI))
    } else {
        format!("{}Mi", in_unit(MI))
    }
}

/// A dataset's pod volume is `dataset-NAME`, a DNS label of at most 63 characters.
pub(super) const MAX_DATASET_NAME_LEN: usize = 63 - "dataset-".len();

/// The name of a `[datasets.NAME]` table.
pub(super) fn dataset_name(name: &str) -> Result<(), Finding> {
    if super::is_dns_label(name) && name.len() <= MAX_DATASET_NAME_LEN {
        return Ok(());
    }
    Err(Finding::error(format!("`{name}` cannot name a dataset")).label("not a short DNS label").help(format!(
        "use at most {MAX_DATASET_NAME_LEN} lowercase letters, digits and `-`, starting and ending with a letter or digit: the box's volume is named `dataset-NAME`, within Kubernetes' 63"
    )))
}

/// `claim`: an existing claim by name, never a box's home.
pub(super) fn dataset_claim(claim: &str) -> Result<(), Finding> {
    super::names::kubernetes_subdomain("PersistentVolumeClaim name", claim)?;
    if claim.ends_with("-home") {
        return Err(Finding::error(format!("`{claim}` is named like a box's home volume (`NAME-home`)"))
            .label("a home, not a dataset")
            .help("every box that lists this dataset could read that person's home: name the claim that holds the dataset, like `imagenet-ro`"));
    }
    Ok(())
}

/// Where the bundle mounts something in the person's container, and the image's system
/// directories: a dataset mounted at, under or above one of them would hide it (or be hidden).
const TAKEN: &[(&str, &str)] = &[
    ("/storage", "the home volume"),
    ("/tmp", "the box's writable /tmp"),
    ("/var/tmp", "the box's writable /var/tmp"),
    ("/secrets", "the box's key Secret"),
    ("/dev", "devices and /dev/shm"),
    ("/etc", "the image's configuration and the box's ConfigMap"),
    ("/proc", "the kernel's /proc"),
    ("/sys", "the kernel's /sys"),
    ("/run", "runtime state"),
    ("/var/run", "runtime state"),
    ("/usr", "the image's programs"),
    ("/bin", "the image's programs"),
    ("/sbin", "the image's programs"),
    ("/lib", "the image's libraries"),
    ("/lib32", "the image's libraries"),
    ("/lib64", "the image's libraries"),
    ("/libx32", "the image's libraries"),
    ("/boot", "the image's /boot"),
    ("/root", "root's home"),
    ("/home", "the image's home directories"),
];

/// Whether `path` is `other` or inside it (both normalised, absolute).
pub(super) fn within(path: &str, other: &str) -> bool {
    path == other || other == "/" || path.strip_prefix(other).is_some_and(|rest| rest.starts_with('/'))
}

/// `mount`: an absolute, normalised path clear of everything in [`TAKEN`].
pub(super) fn dataset_mount(path: &str) -> Result<(), Finding> {
    let segments: Vec<&str> = path.strip_prefix('/').map(|p| p.split('/').collect()).unwrap_or_default();
    let plain = |s: &&str| !s.is_empty() && *s != "." && *s != ".." && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !path.starts_with('/') || segments.is_empty() || !segments.iter().all(plain) {
        return Err(Finding::error(format!("`{path}` is not a directory a dataset can be mounted at")).label("not an absolute path").help(
            "write an absolute path without a trailing `/`, `.` or `..`, of letters, digits, `.`, `_` and `-`, like `/datasets/imagenet`",
        ));
    }
    if let Some((taken, what)) = TAKEN.iter().find(|(taken, _)| within(path, taken) || within(taken, path)) {
        let relation = if path == *taken {
            "is"
        } else if within(path, taken) {
            "is inside"
        } else {
            "would hide"
        };
        return Err(Finding::error(format!("`{path}` {relation} `{taken}`, {what}"))
            .label("taken")
            .help("mount datasets where nothing else is, like the default `/datasets/NAME` (leave `mount` out), or `/data/NAME`"));
    }
    Ok(())
}

/// One name of a box's `datasets` list: a table of devbox.toml's `[datasets]`.
pub(super) fn dataset_known(name: &str, known: &[String]) -> Result<(), Finding> {
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    let finding = Finding::error(format!("no dataset named `{name}` in devbox.toml")).label("unknown dataset");
    Err(if known.is_empty() {
        finding.help(format!(
            "devbox.toml defines no datasets: add `[datasets.{name}]` there with the `claim` that holds it, or remove `{name}` here"
        ))
    } else if let Some(near) = crate::read::closest(name, known) {
        finding.help(format!("did you mean `{near}`?"))
    } else {
        finding.help(format!("devbox.toml's datasets: {}", known.join(", ")))
    })
}

/// `gpu.clients`: GKE's `max-shared-clients-per-gpu` range.
pub(super) fn gpu_clients(clients: u32) -> Result<(), Finding> {
    if (2..=48).contains(&clients) {
        return Ok(());
    }
    Err(Finding::error(format!("GKE shares a GPU between 2 and 48 containers, not {clients}"))
        .help("use the `max-shared-clients-per-gpu` of the node pool the box should run on"))
}

/// `gpu.sharing = "mps"`.
pub(super) fn gpu_mps() -> Finding {
    Finding::error("devbox-gen cannot give a box an MPS-shared GPU")
        .label("needs the host's IPC namespace")
        .help("GKE's MPS clients reach the node's MPS control daemon through the host's IPC namespace (its examples set `hostIPC: true`), which the bundle rules (docs/design.md, rule 5) and the namespace's Pod Security `restricted` forbid")
        .help("use `sharing = \"time-sharing\"` on a node pool created with `gpu-sharing-strategy=time-sharing`")
}

/// More than one GPU on a shared-GPU node, at the key of `count`.
pub(super) fn shared_gpu_count(count: u32) -> Finding {
    Finding::error(format!("a box with a shared GPU gets one, not {count}"))
        .label("one GPU when it is shared")
        .help("GKE refuses a container more than one `nvidia.com/gpu` on a shared-GPU node (\"at most 1 nvidia.com/gpu can be requested on GPU nodes\"), and the pod would never start")
        .help("set `count = 1` (or leave it out), or remove `sharing` for whole GPUs")
}

/// `sharing`, when the `count` above one comes from `[defaults]`.
pub(super) fn sharing_with_default_count(count: u32) -> Finding {
    Finding::error(format!("a shared GPU is one GPU, and `[defaults] gpu.count` in devbox.toml asks for {count}"))
        .label("one GPU when it is shared")
        .help("GKE refuses a container more than one `nvidia.com/gpu` on a shared-GPU node, and the pod would never start")
        .help("add `count = 1` to this `[gpu]`")
}

/// `clients` without `sharing`.
pub(super) fn clients_without_sharing() -> Finding {
    Finding::error("`clients` only selects among shared GPUs, and this GPU is not shared")
        .label("no `sharing`")
        .help("add `sharing = \"time-sharing\"` beside it, or remove `clients`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_is_a_binary_size_above_the_runtime_default() {
        assert!(shm("8Gi").is_ok());
        assert!(shm("1.5Gi").is_ok());
        assert!(shm("64Mi").is_ok());
        assert_eq!(shm("8G").unwrap_err().help, vec!["did you mean `8Gi`?"]);
        assert_eq!(shm("8GB").unwrap_err().help, vec!["did you mean `8Gi`?"]);
        assert_eq!(shm("512m").unwrap_err().help, vec!["did you mean `512Mi`?"]);
        assert_eq!(shm("500k").unwrap_err().help, vec!["did you mean `500Ki`?"]);
        assert!(shm("1073741824").unwrap_err().help[0].contains("1Gi"), "{:?}", shm("1073741824"));
        assert!(shm("32Mi").unwrap_err().message.contains("64Mi"));
        assert!(shm("eight").is_err());
    }

    #[test]
    fn shm_leaves_a_quarter_of_the_memory_and_at_least_1gi() {
        assert!(shm_fits("6Gi", "8Gi").is_ok());
        assert!(shm_fits("24Gi", "32Gi").is_ok());
        assert!(shm_fits("1Gi", "2Gi").is_ok());
        let over = shm_fits("7Gi", "8Gi").unwrap_err();
        assert_eq!(over.message, "`shm = \"7Gi\"` leaves 1Gi of the box's 8Gi of memory to everything else");
        assert!(over.help[1].contains("at most `\"6Gi\"`") && over.help[1].contains("at least `\"10Gi\"`"), "{:?}", over.help);
        let equal = shm_fits("8Gi", "8Gi").unwrap_err();
        assert_eq!(equal.message, "`shm = \"8Gi\"` does not fit in the box's 8Gi of memory");
        assert!(equal.help[1].contains("at least `\"11Gi\"`"), "{:?}", equal.help);
        // Below 1Gi of memory there is no room at all.
        assert!(shm_fits("64Mi", "1Gi").unwrap_err().help[1].contains("no room"));
        // The smallest memory suggested really fits.
        for (shm_size, suggested) in [("7Gi", "10Gi"), ("8Gi", "11Gi"), ("2Gi", "3Gi"), ("100Mi", "2Gi")] {
            assert!(shm_fits(shm_size, suggested).is_ok(), "{shm_size} in {suggested}");
        }
        // Sizes that do not parse are another rule's business.
        assert!(shm_fits("8GB", "8Gi").is_ok());
    }

    #[test]
    fn memory_of_a_box_against_the_default_shm() {
        assert!(memory_fits_default_shm("32Gi", "8Gi").is_ok());
        let small = memory_fits_default_shm("8Gi", "8Gi").unwrap_err();
        assert!(small.message.contains("`[defaults]`"), "{}", small.message);
        assert!(small.help[1].contains("at least `\"11Gi\"`") && small.help[1].contains("`shm = \"6Gi\"`"), "{:?}", small.help);
    }

    #[test]
    fn dataset_names_claims_and_mounts() {
        assert!(dataset_name("imagenet").is_ok());
        assert!(dataset_name("Image_Net").is_err());
        assert!(dataset_name(&"a".repeat(MAX_DATASET_NAME_LEN + 1)).is_err());
        assert!(dataset_claim("imagenet-ro").is_ok());
        assert!(dataset_claim("ImageNet").is_err());
        assert!(dataset_claim("alice-home").unwrap_err().help[0].contains("home"));
        for ok in ["/datasets/imagenet", "/data", "/mnt/coco-2017", "/opt/data", "/var/lib/data", "/storage2"] {
            assert!(dataset_mount(ok).is_ok(), "{ok}");
        }
        for bad in ["datasets", "/", "/datasets/", "/a//b", "/a/../b", "/a b", "", "/data:ro"] {
            assert_eq!(dataset_mount(bad).unwrap_err().label, "not an absolute path", "{bad}");
        }
        assert_eq!(dataset_mount("/storage/data").unwrap_err().message, "`/storage/data` is inside `/storage`, the home volume");
        assert_eq!(dataset_mount("/dev/shm").unwrap_err().message, "`/dev/shm` is inside `/dev`, devices and /dev/shm");
        assert_eq!(dataset_mount("/var").unwrap_err().message, "`/var` would hide `/var/tmp`, the box's writable /var/tmp");
        assert!(dataset_mount("/tmp").is_err());
        assert!(dataset_mount("/etc/devbox").is_err());
    }

    #[test]
    fn dataset_lists_name_known_datasets() {
        let known = vec!["imagenet".to_string(), "coco".to_string()];
        assert!(dataset_known("coco", &known).is_ok());
        assert_eq!(dataset_known("imagenett", &known).unwrap_err().help, vec!["did you mean `imagenet`?"]);
        assert_eq!(dataset_known("laion", &known).unwrap_err().help, vec!["devbox.toml's datasets: imagenet, coco"]);
        assert!(dataset_known("coco", &[]).unwrap_err().help[0].contains("`[datasets.coco]`"));
    }

    #[test]
    fn shared_gpus() {
        assert!(gpu_clients(2).is_ok() && gpu_clients(48).is_ok());
        assert!(gpu_clients(1).is_err() && gpu_clients(49).is_err());
    }
}
