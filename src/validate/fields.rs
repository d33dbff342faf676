//! One rule per field: each says what is wrong in words a person understands, and how to fix it.

use crate::diagnostic::{Diagnostic, PLAIN_LABEL};
use crate::model::Arch;
use crate::quantity::Quantity;

/// What a rule found, before it is pointed at a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub message: String,
    pub label: String,
    pub help: Vec<String>,
    pub warning: bool,
}

impl Finding {
    pub fn error(message: impl Into<String>) -> Self {
        Self { message: message.into(), label: PLAIN_LABEL.into(), help: Vec::new(), warning: false }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self { warning: true, ..Self::error(message) }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }
}

/// A finding not yet pointed anywhere: locate it with `Diagnostic::at_span` (which keeps
/// its label) or `Diagnostic::in_path`.
impl From<Finding> for Diagnostic {
    fn from(finding: Finding) -> Self {
        let Finding { message, label, help, warning } = finding;
        let diagnostic = if warning { Diagnostic::warning(message) } else { Diagnostic::error(message) };
        Diagnostic { label, help, ..diagnostic }
    }
}

/// The longest address SMTP carries (RFC 5321 §4.5.3.1.3: a path of 256 octets, its angle
/// brackets included). Every object of the box carries the address in an annotation.
const MAX_EMAIL_LEN: usize = 254;

pub(super) fn email(value: &str) -> Result<(), Finding> {
    if value.len() > MAX_EMAIL_LEN {
        return Err(Finding::error(format!(
            "the address is {} bytes long in UTF-8, more than the {MAX_EMAIL_LEN} mail allows",
            value.len()
        ))
        .help("write the owner's address alone, like `alice@example.com`"));
    }
    // An unquoted local part (RFC 5322's dot-atom) and a host name: what a directory hands out.
    let label_ok = |label: &str| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-');
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && local.split('.').all(|atom| !atom.is_empty())
            && domain.contains('.')
            && domain.split('.').all(label_ok)
            && !domain.contains('@')
            && !value.chars().any(|c| c.is_whitespace() || crate::text::drives_the_display(c) || c == '<' || c == '>')
    });
    if valid {
        Ok(())
    } else {
        Err(Finding::error(format!("`{}` is not an email address", crate::text::printable(value)))
            .help("write the owner's address alone, like `alice@example.com`"))
    }
}

/// An image reference's name, tag and digest: `[registry[:port]/]path[:tag][@digest]`.
fn image_parts(value: &str) -> (&str, Option<&str>, Option<&str>) {
    let (name_tag, digest) = match value.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (value, None),
    };
    // A `:` after the last `/` separates the tag (one before it is a registry port).
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..]), digest),
        None => (name_tag, None, digest),
    }
}

/// An image name as the distribution project's reference grammar has it (its `reference`
/// package, which containerd and the kubelet parse with): an optional registry (a first part
/// with a `.` or a `:`, or `localhost`: host names of letters of any case, digits and `-`,
/// apart by dots, and a port of at most 65535), then path components of lowercase letters and
/// digits, apart inside by one `.`, one or two `_`, or any number of `-`.
fn image_name(name: &str) -> bool {
    let mut parts: Vec<&str> = name.split('/').collect();
    // The grammar also takes a first part with capitals as a host (`Ubuntu/x`), but no
    // registry has a name without a dot: such a reference is a typo, and its pull fails.
    let is_registry = parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost");
    if is_registry {
        let (host, port) = match parts[0].split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (parts[0], None),
        };
        let host_ok = host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        let port_ok = port.is_none_or(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        });
        if !host_ok || !port_ok {
            return false;
        }
        parts.remove(0);
    }
    !parts.is_empty() && parts.iter().all(|part| path_component(part))
}

/// `[a-z0-9]+` runs apart by `.`, `_`, `__` or `-`+.
fn path_component(part: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut run = String::new();
    for &b in bytes {
        if alnum(b) {
            if !(run.is_empty() || run == "." || run == "_" || run == "__" || run.bytes().all(|r| r == b'-')) {
                return false;
            }
            run.clear();
        } else if b"._-".contains(&b) {
            run.push(b as char);
        } else {
            return false;
        }
    }
    true
}

/// `[registry[:port]/]path[:tag][@sha256:digest]`, pinned by a tag other than `latest` or a digest.
pub(super) fn image(value: &str) -> Result<(), Finding> {
    let invalid = || {
        Finding::error(format!("`{value}` is not a container image reference"))
            .help("write it like `us-docker.pkg.dev/acme/devbox/jupyter:2024.06` or `…@sha256:<64 hex digits>`")
    };
    let (name, tag, digest) = image_parts(value);
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").ok_or_else(invalid)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(invalid());
        }
    }
    let path_ok = image_name(name);
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !t.starts_with(['.', '-'])
    });
    if !path_ok || !tag_ok {
        return Err(invalid());
    }
    match (tag, digest) {
        (_, Some(_)) => Ok(()),
        (Some("latest"), None) => {
            Err(Finding::error("`latest` is not a pinned image: the box would change under its owner without review")
                .help(format!("pin a version, e.g. `{name}:2024.06`, or a digest `{name}@sha256:…`")))
        }
        (Some(_), None) => Ok(()),
        (None, None) => Err(Finding::error(format!("`{value}` has no tag or digest, so it means `latest` and is not pinned"))
            .help(format!("pin a version, e.g. `{name}:2024.06`, or a digest `{name}@sha256:…`"))),
    }
}

/// The first tailscale release whose containerboot reads `TS_ENABLE_HEALTH_CHECK` and
/// `TS_LOCAL_ADDR_PORT` (cmd/containerboot, tailscale's git history: absent in v1.76.6 and
/// v1.77.0, read from v1.78.0), which serve the `/healthz` the sidecar's probes ask for.
const TAILSCALE_HEALTH_CHECK: (u32, u32) = (1, 78);

/// `[tailscale] image`: when its tag names a version (`v1.80.3`, `1.78`), one that serves the
/// sidecar's health check. Older, the probes find nothing on the port and the kubelet restarts
/// the sidecar every few minutes, taking the box off the tailnet. tailscale's moving tags
/// (`stable`, `unstable`, as `latest`) are not pinned, unless a digest pins them; a digest alone
/// is not judged.
pub(super) fn tailscale_image_version(value: &str) -> Result<(), Finding> {
    let (name, Some(tag), digest) = image_parts(value) else { return Ok(()) };
    if matches!(tag, "stable" | "unstable") && digest.is_none() {
        return Err(Finding::error(format!(
            "`{tag}` is not a pinned image: tailscale moves it to each new release, and every box's sidecar would change without review"
        ))
        .label("moves")
        .help(format!("pin a version, e.g. `{}`, or a digest `{name}@sha256:…`", crate::defaults::TAILSCALE_IMAGE)));
    }
    let mut numbers = tag.strip_prefix('v').unwrap_or(tag).split(['.', '-']).map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor))) = (numbers.next(), numbers.next()) else { return Ok(()) };
    let (min_major, min_minor) = TAILSCALE_HEALTH_CHECK;
    if (major, minor) >= TAILSCALE_HEALTH_CHECK {
        return Ok(());
    }
    Err(Finding::error(format!("tailscale `{tag}` is older than {min_major}.{min_minor}, the first that serves the health check the sidecar's probes ask for"))
        .label(format!("before {min_major}.{min_minor}"))
        .help(format!(
            "use `{}` (the default) or later: with this one nothing answers `/healthz` on the health port, and the kubelet restarts the sidecar every few minutes, the box dropping off the tailnet each time",
            crate::defaults::TAILSCALE_IMAGE
        )))
}

pub(super) fn cluster(value: &str, known: &[String]) -> Result<(), Finding> {
    if known.iter().any(|k| k == value) {
        return Ok(());
    }
    let mut finding = Finding::error(format!("no cluster named `{value}` in devbox.toml")).label("unknown cluster");
    if known.is_empty() {
        finding = finding.help("devbox.toml lists no `[[clusters]]`: leave the cluster out, or add it to devbox.toml");
    } else if let Some(near) = crate::read::closest(value, known) {
        finding = finding.help(format!("did you mean `{near}`?"));
    } else {
        finding = finding.help(format!("known clusters: {}", known.join(", ")));
    }
    Err(finding)
}

pub(super) fn cpu(value: &str) -> Result<(), Finding> {
    let quantity = parse_quantity(value, "CPU")?;
    if quantity.is_zero() {
        return Err(Finding::error("a box needs some CPU").help("use e.g. `\"2\"` or `\"500m\"`"));
    }
    // JupyterLab 4 takes about 1.3 CPU-seconds to start (measured on the runtime test's venv):
    // 13 s at a tenth of a core, over two minutes at 10m, the least a CFS quota gives (1 ms per
    // 100 ms period). Less than a tenth is a slip, like memory under 128Mi.
    if quantity.nanos() < 100_000_000 {
        return Err(Finding::error(format!("{value} of CPU is too little to run a devbox"))
            .help("the least is `\"100m\"`, where JupyterLab takes about 13 s to start; `\"500m\"` is usable, `\"4\"` typical"));
    }
    if quantity > 256u128 {
        return Err(Finding::error(format!("{value} CPUs is more than any node has"))
            .help("CPU is counted in cores: `\"8\"` is eight cores, `\"500m\"` half of one"));
    }
    Ok(())
}

pub(super) fn memory(value: &str) -> Result<(), Finding> {
    not_thousandths_of_a_byte(value)?;
    let quantity = parse_quantity(value, "memory")?;
    if quantity < (128u128 << 20) {
        return Err(Finding::error(format!("{value} of memory is too little to run a devbox"))
            .help("the least is `\"128Mi\"`; JupyterLab wants `\"512Mi\"` or more, and `\"16Gi\"` is typical"));
    }
    // The largest machines there are (EC2 u7in-32tb, Compute Engine x4-1920) have 32 TiB.
    if quantity > (32u128 << 40) {
        return Err(Finding::error(format!("{value} of memory is more than any node has"))
            .help("memory is counted in bytes, with a unit: `\"16Gi\"` is 16 GiB; the largest machines have `\"32Ti\"`"));
    }
    Ok(())
}

pub(super) fn home_size(value: &str) -> Result<(), Finding> {
    let quantity = parse_quantity(value, "volume size")?;
    if quantity < (1u128 << 30) {
        return Err(Finding::error(format!("a {value} home volume is too small")).help("use at least `\"1Gi\"`; `\"100Gi\"` is typical"));
    }
    Ok(())
}

/// `m` is a valid suffix (thousandths) but for bytes it is always a slip for `Mi`.
fn not_thousandths_of_a_byte(value: &str) -> Result<(), Finding> {
    match value.strip_suffix('m') {
        Some(number) => {
            Err(Finding::error(format!("`{value}` means {number} thousandths of a byte")).help(format!("did you mean `{number}Mi`?")))
        }
        None => Ok(()),
    }
}

/// `[quota] cpu`: any quantity. No bounds: it is a whole namespace's (far above one node's
/// 256), and `"0"` is a namespace where nothing may run.
pub(super) fn quota_cpu(value: &str) -> Result<(), Finding> {
    parse_quantity(value, "CPU").map(drop)
}

/// `[quota] memory` and `[quota] storage`: bytes, as a quantity (`"1600Gi"`).
pub(super) fn quota_bytes(value: &str, what: &str) -> Result<(), Finding> {
    not_thousandths_of_a_byte(value)?;
    parse_quantity(value, what).map(drop)
}

pub(super) fn parse_quantity(value: &str, what: &str) -> Result<Quantity, Finding> {
    Quantity::parse(value).map_err(|e| {
        if e.message.ends_with("is too large") || e.message.contains("smaller than a billionth") {
            return Finding::error(e.message)
                .label(format!("no {what} a box can have"))
                .help("write the amount in Kubernetes units: `\"8\"`, `\"500m\"`, `\"32Gi\"`, `\"200Gi\"`");
        }
        let finding = Finding::error(e.message).label(format!("not a Kubernetes {what} quantity"));
        // `"8GB"` for a CPU is bytes where cores were meant: `8Gi` would only be refused next.
        let bytes = |s: &str| s.ends_with(['i', 'k', 'M', 'G', 'T', 'P', 'E']);
        match e.suggestion {
            Some(s) if what == "CPU" && bytes(&s) => {
                finding.help("CPU is counted in cores, without a unit: `\"8\"`, or thousandths like `\"500m\"`")
            }
            Some(s) => finding.help(format!("did you mean `{s}`?")),
            None => finding.help("write a number with a Kubernetes unit: `\"500m\"`, `\"8\"`, `\"512Mi\"`, `\"32Gi\"`"),
        }
    })
}

/// A GKE accelerator: its name (the `cloud.google.com/gke-accelerator` label), the architecture
/// of the only machines that carry it, and the most of it one of them comes with, the most a
/// pod can have.
struct KnownGpu {
    name: &'static str,
    arch: Arch,
    most: u32,
}

const fn gpu(name: &'static str, arch: Arch, most: u32) -> KnownGpu {
    KnownGpu { name, arch, most }
}

/// GKE accelerator names known today. The A4X series pairs GB200 with Arm Grace CPUs; N1, A2,
/// A3, A4, G2 and G4 are x86. The counts are those of Compute Engine's GPU machine types: N1
/// takes 1, 2 or 4 T4, P4 or P100 and up to 8 V100; A2 comes with 1 to 16 A100 40GB (the
/// a2-megagpu-16g) and 1 to 8 of 80GB; G2 with 1 to 8 L4; A3 with 1 to 8 H100; A3 Mega and
/// Ultra, and A4, with 8; A4X with 4; G4 with 1 to 8 RTX PRO 6000. A pod asking for more of a
/// type than any node has stays Pending.
/// Any other name is an error, not a warning: a box that asks for an accelerator no node has
/// stays Pending, and a warning passes CI. A type newer than this list needs no release:
/// `[policy] allow_gpu_types` in devbox.toml accepts it.
const KNOWN_GPUS: &[KnownGpu] = &[
    gpu("nvidia-tesla-t4", Arch::Amd64, 4),
    gpu("nvidia-tesla-p4", Arch::Amd64, 4),
    gpu("nvidia-tesla-p100", Arch::Amd64, 4),
    gpu("nvidia-tesla-v100", Arch::Amd64, 8),
    gpu("nvidia-tesla-a100", Arch::Amd64, 16),
    gpu("nvidia-a100-80gb", Arch::Amd64, 8),
    gpu("nvidia-l4", Arch::Amd64, 8),
    gpu("nvidia-h100-80gb", Arch::Amd64, 8),
    gpu("nvidia-h100-mega-80gb", Arch::Amd64, 8),
    gpu("nvidia-h200-141gb", Arch::Amd64, 8),
    gpu("nvidia-b200", Arch::Amd64, 8),
    gpu("nvidia-gb200", Arch::Arm64, 4),
    gpu("nvidia-rtx-pro-6000", Arch::Amd64, 8),
];

fn known_gpu(name: &str) -> Option<&'static KnownGpu> {
    KNOWN_GPUS.iter().find(|known| known.name == name)
}

/// More GPUs of a known type than any machine of it comes with: no node can take the pod. (Fewer
/// than a node has is fine: the rest of the node's GPUs serve other pods.) Types only the
/// policy knows pass.
pub(super) fn gpu_count_of(kind: &str, count: u32) -> Result<(), Finding> {
    let Some(most) = known_gpu(kind).map(|known| known.most) else { return Ok(()) };
    if count <= most {
        return Ok(());
    }
    Err(Finding::error(format!("no GKE node has {count} `{kind}`: its machines come with at most {most}"))
        .label("no node has as many")
        .help(format!("ask for at most {most} of `{kind}`, or for another type")))
}

/// `allowed`: devbox.toml's `[policy] allow_gpu_types`.
pub(super) fn gpu_type(value: &str, allowed: &[String]) -> Result<(), Finding> {
    if known_gpu(value).is_some() || allowed.iter().any(|a| a == value) {
        return Ok(());
    }
    let known: Vec<String> = KNOWN_GPUS.iter().map(|known| known.name.to_string()).collect();
    let finding = Finding::error(format!("`{value}` is not a GKE accelerator devbox-gen knows")).label("unknown GPU type");
    let finding = match crate::read::closest(value, &known) {
        Some(near) => finding.help(format!("did you mean `{near}`?")),
        None => finding.help(format!("known types: {}", known.join(", "))),
    };
    // Only a name GKE could have is worth allowing; anything else is not an accelerator label.
    if value.starts_with("nvidia-") && super::is_dns_label(value) {
        return Err(finding.help(format!(
            "a box that asks for an accelerator no node has stays Pending: if `gcloud compute accelerator-types list` has `{value}`, allow it in devbox.toml with `[policy] allow_gpu_types = [\"{value}\"]`"
        )));
    }
    Err(finding)
}

/// A known accelerator on a box of the other architecture: the pod's node selector asks for
/// both, no node has both, and the box stays Pending. Types only the policy knows pass.
pub(super) fn gpu_arch(kind: &str, arch: Arch) -> Result<(), Finding> {
    let Some(node_arch) = known_gpu(kind).map(|known| known.arch) else { return Ok(()) };
    if node_arch == arch {
        return Ok(());
    }
    let same_arch: Vec<&str> = KNOWN_GPUS.iter().filter(|known| known.arch == arch).map(|known| known.name).collect();
    Err(Finding::error(format!("GKE has `{kind}` only on {} nodes, and this box is {}", node_arch.as_str(), arch.as_str()))
        .label("no node has both")
        .help(format!(
            "set `arch = \"{}\"` (the image needs a build for it), or pick a GPU of {} nodes: {}",
            node_arch.as_str(),
            arch.as_str(),
            same_arch.join(", ")
        )))
}

pub(super) fn gpu_count(count: u32) -> Result<(), Finding> {
    match count {
        1 | 2 | 4 | 8 | 16 => Ok(()),
        _ => Err(Finding::error(format!("{count} GPUs cannot be attached to one GKE node"))
            .help("use 1, 2, 4, 8 or 16; remove `[gpu]` for none")),
    }
}

/// A tailnet machine name: a DNS label (lowercase, as MagicDNS shows it).
pub(super) fn tailnet_hostname(value: &str) -> Result<(), Finding> {
    if super::is_dns_label(value) {
        Ok(())
    } else {
        Err(Finding::error(format!("`{value}` is not a valid tailnet hostname"))
            .help("use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"))
    }
}

/// Tailscale ACL tags: `tag:` then a letter, then letters, digits and `-`.
pub(super) fn tailnet_tag(value: &str) -> Result<(), Finding> {
    let name = value.strip_prefix("tag:");
    let valid =
        name.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_alphabetic()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if valid {
        return Ok(());
    }
    let finding = Finding::error(format!("`{value}` is not a Tailscale ACL tag"));
    Err(match name {
        None => finding.help(format!("tags start with `tag:`, e.g. `tag:{value}`")),
        Some(_) => finding.help("after `tag:` use a letter, then letters, digits and `-`"),
    })
}

/// Variables the bundle sets itself; overriding them would break the box.
const RESERVED_ENV: &[&str] = &["HOME", "SSH_AUTH_SOCK", "DEVBOX_NAME"];
/// Words that make an `[env]` name look like it holds a credential (the doc comment of
/// `[policy] allow_secret_env` lists them too; a test keeps the two equal).
const SECRET_WORDS: &[&str] = &["TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "PRIVATE"];

/// The most a single `NAME=value` string may take in a process's environment, its closing NUL
/// included: Linux's `MAX_ARG_STRLEN`, 32 pages (include/uapi/linux/binfmts.h), with the 4 KiB
/// pages of x86-64 and of arm64 as GKE and EKS run it. execve(2) refuses a longer one with E2BIG,
/// so the container runtime cannot start the container.
const MAX_ENV_ENTRY_BYTES: usize = 32 * 4096;

/// `allowed`: devbox.toml's `[policy] allow_secret_env`.
pub(super) fn env_var(name: &str, value: &str, allowed: &[String]) -> Result<(), Finding> {
    env_name(name)?;
    if RESERVED_ENV.contains(&name) {
        return Err(Finding::error(format!("`{name}` is set by devbox-gen and cannot be changed here")).help("remove it from `[env]`"));
    }
    // The API server stores either, and the pod is created; it is the container runtime's
    // execve(2) of the container's first process that fails, so the box never starts.
    if value.contains('\0') {
        return Err(Finding::error(format!("`{name}` holds a NUL character, which no process environment can carry"))
            .label("NUL")
            .help("the container would never start: its runtime cannot pass the value to execve(2); remove the `\\u0000`"));
    }
    let entry = name.len() + "=".len() + value.len() + "\0".len();
    if entry > MAX_ENV_ENTRY_BYTES {
        return Err(Finding::error(format!(
            "`{name}` takes {entry} bytes in the environment, more than the {MAX_ENV_ENTRY_BYTES} Linux passes for one variable"
        ))
        .label("too long for execve(2)")
        .help("the container would never start (execve: argument list too long); put the text in a file in the image or the home volume, and the file's path here"));
    }
    // An empty value puts nothing in Git; a name on the policy list was reviewed as harmless.
    if looks_secret(name) && !value.is_empty() && !allowed.iter().any(|a| a == name) {
        return Err(Finding::error(format!(
            "`{name}` looks like a secret, and `[env]` values are committed to Git and written into the pod spec in clear text"
        ))
        .label("in clear text")
        .help(format!(
            "keep the value out of Git: add `--from-file={name}=FILE` to the box's key Secret command that `devbox-gen secrets NAME` prints (the Secret is mounted at /secrets), and read /secrets/{name} in the box; add it each time you run that command, which replaces the whole Secret"
        ))
        .help(format!("if the value is not secret, allow the name in devbox.toml: `[policy] allow_secret_env = [\"{name}\"]`")));
    }
    Ok(())
}

/// The most `[env]` may hold altogether, as `NAME=value` strings: the StatefulSet carries it,
/// and Argo CD's client-side apply (and `kubectl apply`) copies the StatefulSet into an
/// annotation the API server holds to 256 KiB with the object's other annotations. The rest of
/// the StatefulSet takes about 10 KiB; this leaves room for it, and for `[defaults.env]`.
const MAX_ENV_TOTAL_BYTES: usize = 192 * 1024;

pub(super) fn env_total(env: &std::collections::BTreeMap<String, String>) -> Result<(), Finding> {
    let total: usize = env.iter().map(|(name, value)| name.len() + value.len() + 2).sum();
    if total <= MAX_ENV_TOTAL_BYTES {
        return Ok(());
    }
    Err(Finding::error(format!("`[env]` holds {total} bytes, more than the {MAX_ENV_TOTAL_BYTES} a box's StatefulSet can carry"))
        .label("too long to apply")
        .help("Argo CD's client-side apply, like `kubectl apply`, copies the StatefulSet into an annotation of at most 256 KiB, so the API server would refuse it: put long values in a file in the image or the home volume, and the file's path here"))
}

/// A `$(OTHER)` in `name`'s value where OTHER is a variable of `[env]` (`defined`) that comes
/// at or after `name` in the container's env, which devbox-gen sorts by name: Kubernetes
/// expands a reference only to a variable defined earlier in the list and leaves any other as
/// written (`third_party/forked/golang/expansion`, where `$$` is a `$`). A reference to
/// anything else may be meant for a shell (`PS1 = "$(whoami)"`), so only these are told.
pub(super) fn env_later_reference(name: &str, value: &str, defined: impl Fn(&str) -> bool) -> Result<(), Finding> {
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
        } else if let Some((other, after)) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            if other == name {
                return Err(Finding::warning(format!(
                    "`$({name})` stays as written in `{name}`'s own value: Kubernetes expands a reference only to a variable defined before it, never to the image's value of the same name"
                ))
                .label("not expanded")
                .help("write the whole value out (for `PATH`, the image's directories as well as yours)"));
            }
            if other > name && defined(other) {
                return Err(Finding::warning(format!(
                    "`$({other})` stays as written in `{name}`: Kubernetes expands a reference only to a variable defined before it, and `{other}` comes after it in the container's env, which is sorted by name"
                ))
                .label("not expanded")
                .help(format!("rename one of them so that `{other}` sorts before `{name}`, or write the value out")));
            }
            rest = after;
        }
    }
    Ok(())
}

fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// A name the shell and every container runtime take as an environment variable.
pub(super) fn env_name(name: &str) -> Result<(), Finding> {
    let valid =
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Finding::error(format!("`{name}` is not a portable environment variable name"))
            .help("use letters, digits and `_`, not starting with a digit"))
    }
}

pub(super) fn server_url(value: &str) -> Result<(), Finding> {
    let parsed = url::Url::parse(value).ok().filter(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()));
    match parsed {
        Some(_) => Ok(()),
        None => Err(Finding::error(format!("`{value}` is not an https:// API server URL"))
            .help("use the URL Argo CD knows the cluster by, e.g. `https://kubernetes.default.svc`")),
    }
}

/// A URL Argo CD and Flux can clone: `https://` or `ssh://` with a host (the WHATWG parser of
/// the `url` crate, which also refuses a port that is not a number), or scp-like `git@host:path`.
/// A password or token in it is refused: it would be committed, and written into every
/// Application and GitRepository.
pub(super) fn repo_url(value: &str) -> Result<(), Finding> {
    let refused = || {
        Err(Finding::error(format!("`{value}` is not a Git URL Argo CD or Flux can clone"))
            .help("use `https://github.com/acme/devboxes.git` or `ssh://git@github.com/acme/devboxes.git`"))
    };
    if value.contains(char::is_whitespace) {
        return refused();
    }
    if value.contains("{{") {
        return Err(template_braces(value));
    }
    if let Some((host, path)) = value.strip_prefix("git@").and_then(|rest| rest.split_once(':')) {
        let valid = !host.is_empty() && !host.contains(['/', '@']) && !path.is_empty();
        return if valid { Ok(()) } else { refused() };
    }
    let Some(parsed) = url::Url::parse(value).ok().filter(|u| ["https", "ssh"].contains(&u.scheme())) else {
        return refused();
    };
    if parsed.host_str().is_none_or(str::is_empty) || parsed.path().trim_start_matches('/').is_empty() {
        return refused();
    }
    if parsed.password().is_some() || (parsed.scheme() == "https" && !parsed.username().is_empty()) {
        return Err(Finding::error("the URL carries credentials, which would be committed to Git and written into every Application and GitRepository")
            .label("credentials")
            .help("write the URL without them, and give Flux a Secret with them (`[repo] secret`, `devbox-gen secrets`) and Argo CD its repository credentials"));
    }
    Ok(())
}

/// Flux's GitRepository takes `http(s)://` and `ssh://` URLs only, not scp-like `git@host:path`.
pub(super) fn flux_repo_url(value: &str) -> Result<(), Finding> {
    match value.strip_prefix("git@").and_then(|rest| rest.split_once(':')) {
        Some((host, path)) => Err(Finding::error("Flux cannot clone an scp-like `git@host:path` URL")
            .label("not an ssh:// URL")
            .help(format!("write it as `ssh://git@{host}/{}`", path.trim_start_matches('/')))),
        None => Ok(()),
    }
}

/// A duration as Flux's CRDs take it (a Go duration, `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`),
/// and not zero: an interval of nothing would reconcile without pause.
pub(super) fn flux_duration(value: &str) -> Result<(), Finding> {
    let refused = |label: &str| {
        Err(Finding::error(format!("`{value}` is not a duration Flux accepts"))
            .label(label)
            .help("write a Go duration of numbers and units `h`, `m`, `s` or `ms`, like `10m`, `1h30m` or `90s`"))
    };
    let mut rest = value;
    let mut nonzero = false;
    while !rest.is_empty() {
        let whole = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if whole == 0 {
            return refused("a number must come first");
        }
        let mut digits = rest[..whole].to_string();
        rest = &rest[whole..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction = after_dot.len() - after_dot.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if fraction == 0 {
                return refused("digits must follow the `.`");
            }
            digits.push_str(&after_dot[..fraction]);
            rest = &after_dot[fraction..];
        }
        nonzero |= digits.contains(|c: char| ('1'..='9').contains(&c));
        rest = match ["ms", "h", "m", "s"].iter().find_map(|unit| rest.strip_prefix(unit)) {
            Some(after) => after,
            None => return refused("each number needs a unit: `h`, `m`, `s` or `ms`"),
        };
    }
    if value.is_empty() {
        return refused("empty");
    }
    if !nonzero {
        return Err(Finding::error(format!("`{value}` is no time at all"))
            .label("zero")
            .help("give Flux a real pause, like `10m`; leave the key out for the default"));
    }
    Ok(())
}

/// A branch, tag, commit or full reference: one word.
/// A branch, tag or commit as `git check-ref-format --branch` takes one: no `..`, `@{`, `//`,
/// control characters, spaces or any of `~^:?*[\`; no part starting with `.` or ending with
/// `.lock`; not starting with `-` or `/`, nor ending with `/` or `.`; not `@`. Argo CD and Flux
/// hand it to git, which refuses any other.
/// `{{` in a value the ApplicationSet's template carries: its controller renders the template
/// with Go's text/template (`goTemplate: true`) before it makes each Application, so the value
/// would be evaluated, not written.
fn template_braces(value: &str) -> Finding {
    Finding::error(format!("`{value}` holds `{{{{`, which the ApplicationSet controller would evaluate as a Go template"))
        .label("a template action")
        .help("write the value itself: the ApplicationSet renders `{{ ... }}` in it for each box before Argo CD reads it")
}

pub(super) fn git_revision(value: &str) -> Result<(), Finding> {
    if value.contains("{{") {
        return Err(template_braces(value));
    }
    let refused_char = |c: char| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c);
    let valid = !value.is_empty()
        && value != "@"
        && !value.contains(refused_char)
        && !["..", "@{", "//"].iter().any(|bad| value.contains(bad))
        && !value.starts_with(['-', '/'])
        && !value.ends_with(['/', '.'])
        && value.split('/').all(|part| !part.starts_with('.') && !part.ends_with(".lock"));
    if valid {
        Ok(())
    } else {
        Err(Finding::error(format!("`{value}` is not a Git branch, tag or commit")).help("use e.g. `main`, `refs/tags/v1` or a commit SHA"))
    }
}

/// `deploy/devboxes`: relative, normalised, and plain enough to sit inside an Argo CD glob.
pub(super) fn repo_path(value: &str) -> Result<(), Finding> {
    let segments_ok = value.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    let chars_ok = value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if segments_ok && chars_ok {
        Ok(())
    } else {
        Err(Finding::error(format!("`{value}` is not a directory inside the repository"))
            .help("write the config repo's directory relative to the repository root, like `deploy/devboxes`: no leading or trailing `/`, no `.` or `..`, only letters, digits, `-`, `_`, `.`")
            .help("remove `path` when devbox.toml is at the repository root"))
    }
}

pub(super) fn template_path(value: &str) -> Result<(), Finding> {
    let path = std::path::Path::new(value);
    if path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(Finding::error("the template must live inside the config repo")
            .help("use a path relative to devbox.toml, like `templates/devbox.jsonnet`, so every checkout builds the same"));
    }
    Ok(())
}

/// The most a price list may charge for one unit, in any currency.
const MAX_PRICE: f64 = 10_000_000.0;

/// A price per unit from devbox.toml's `[prices]`: what a price list could hold.
pub(super) fn price(value: f64) -> Result<(), Finding> {
    if !value.is_finite() {
        return Err(Finding::error("a price must be a finite number").help("write the price of one unit as a plain number, like `0.0316`"));
    }
    if value < 0.0 {
        return Err(Finding::error("a price cannot be negative")
            .help("write the price list's price of one unit, like `0.0316`; discounts and credits are not counted"));
    }
    // A CPU-hour is about 0.03 US dollars, 500 rupiah, 20,000 rials: ten million of anything is
    // a misplaced decimal point, and amounts that large would not add up exactly.
    if value > MAX_PRICE {
        return Err(Finding::error(format!("a price of more than {MAX_PRICE} for one unit is no price list's")).help(
            "write the price of one unit (one CPU for an hour, one GiB for an hour or a month), like `0.0316`: check the decimal point",
        ));
    }
    Ok(())
}

/// `[prices] currency`: the ISO 4217 code, which the diff prints beside every amount.
pub(super) fn currency(value: &str) -> Result<(), Finding> {
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_uppercase()) {
        return Ok(());
    }
    let finding = Finding::error(format!("`{value}` is not an ISO 4217 currency code"));
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(finding.help(format!("write it in capitals: `{}`", value.to_ascii_uppercase())));
    }
    Err(finding.help("write the three capital letters of the price list's currency, like `USD` or `EUR`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flux's own rule, from the Kustomization CRD devbox-gen's output is checked against:
    /// every duration we accept matches its pattern, and every one it refuses we refuse (we
    /// refuse zero too).
    #[test]
    fn flux_durations_are_what_the_kustomization_crd_accepts_but_zero() {
        let crd: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/crds/kustomize.toolkit.fluxcd.io_kustomization_v1.json")).unwrap();
        let interval = &crd["properties"]["spec"]["properties"]["interval"];
        assert_eq!(interval["pattern"], "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", "the CRD's rule changed: check flux_duration");
        let crd_accepts = |value: &str| jsonschema::is_valid(interval, &serde_json::json!(value));
        for value in ["10m", "1h30m", "90s", "500ms", "1.5h", "2h0m0s", "0.5s", "10m0s", "1ms1s", "100h"] {
            assert!(crd_accepts(value) && flux_duration(value).is_ok(), "{value}");
        }
        for value in ["", "10", "m", "10 m", "1d", "-1m", "1.m", ".5s", "1h30", "10M", "1us", "1m s", "ms"] {
            assert!(!crd_accepts(value) && flux_duration(value).is_err(), "{value}");
        }
        for zero in ["0s", "0m0s", "0.0h", "0ms"] {
            assert!(crd_accepts(zero), "{zero}");
            assert!(flux_duration(zero).unwrap_err().message.contains("no time at all"), "{zero}");
        }
    }

    #[test]
    fn images_must_be_pinned_and_well_formed() {
        for ok in [
            "us-docker.pkg.dev/acme/devbox/jupyter:2024.06",
            "localhost:5000/devbox:1",
            "ubuntu:24.04",
            &format!("ghcr.io/a/b@sha256:{}", "a".repeat(64)),
            &format!("ghcr.io/a/b:1.2@sha256:{}", "0".repeat(64)),
        ] {
            assert!(image(ok).is_ok(), "{ok}");
        }
        for bad in ["ubuntu", "ubuntu:latest", "Ubuntu/x:1", "a//b:1", "a:b:c", "x@sha256:abc", "x:", ""] {
            assert!(image(bad).is_err(), "{bad}");
        }
        assert!(image("localhost:5000/devbox").unwrap_err().message.contains("no tag"));
    }

    #[test]
    fn memory_catches_the_usual_slips() {
        assert_eq!(memory("32GB").unwrap_err().help, vec!["did you mean `32Gi`?"]);
        assert_eq!(memory("512m").unwrap_err().help, vec!["did you mean `512Mi`?"]);
        assert!(memory("64Mi").is_err());
        assert!(memory("16Gi").is_ok());
        assert!(memory("16G").is_ok());
        assert!(memory("32Ti").is_ok());
        assert_eq!(memory("99999999999999999999Gi").unwrap_err().message, "99999999999999999999Gi of memory is more than any node has");
        assert!(memory("8Ei").is_err());
    }

    #[test]
    fn cpu_and_sizes() {
        assert!(cpu("500m").is_ok());
        assert!(cpu("0").is_err());
        assert!(cpu("100m").is_ok());
        assert_eq!(cpu("99m").unwrap_err().message, "99m of CPU is too little to run a devbox");
        assert!(cpu("0.05").is_err());
        assert!(cpu("1000").is_err());
        assert!(home_size("100Mi").is_err());
        assert!(home_size("1Ti").is_ok());
    }

    #[test]
    fn quotas_are_quantities_without_a_box_s_bounds() {
        assert!(quota_cpu("400").is_ok());
        assert!(quota_cpu("0").is_ok());
        assert!(quota_cpu("63500m").is_ok());
        assert_eq!(quota_cpu("400 cores").unwrap_err().label, "not a Kubernetes CPU quantity");
        assert!(quota_bytes("1600Gi", "memory").is_ok());
        assert!(quota_bytes("20Ti", "storage").is_ok());
        assert_eq!(quota_bytes("20TB", "storage").unwrap_err().help, vec!["did you mean `20Ti`?"]);
        assert_eq!(quota_bytes("1600m", "memory").unwrap_err().help, vec!["did you mean `1600Mi`?"]);
    }

    #[test]
    fn gpus_known_allowed_and_wrong() {
        assert!(gpu_type("nvidia-l4", &[]).is_ok());
        let typo = gpu_type("nvidia-tesla-t5", &[]).unwrap_err();
        assert!(!typo.warning);
        assert_eq!(typo.help[0], "did you mean `nvidia-tesla-t4`?");
        // Unknown is an error whatever it looks like; only a GKE-shaped name is worth allowing.
        let new = gpu_type("nvidia-x9000-pro", &[]).unwrap_err();
        assert!(!new.warning);
        assert!(new.help.last().unwrap().contains("`[policy] allow_gpu_types = [\"nvidia-x9000-pro\"]`"), "{:?}", new.help);
        assert!(gpu_type("nvidia-x9000-pro", &["nvidia-x9000-pro".into()]).is_ok());
        let other = gpu_type("amd-mi300", &[]).unwrap_err();
        assert!(!other.warning && !other.help.iter().any(|h| h.contains("policy")), "{:?}", other.help);
        assert!(gpu_count(3).is_err());
        assert!(gpu_count(2).is_ok());
    }

    #[test]
    fn tailnet_names_and_tags() {
        assert!(tailnet_hostname("alice-devbox").is_ok());
        assert!(tailnet_hostname("Alice_Box").is_err());
        assert!(tailnet_tag("tag:devbox").is_ok());
        assert_eq!(tailnet_tag("devbox").unwrap_err().help, vec!["tags start with `tag:`, e.g. `tag:devbox`"]);
        assert!(tailnet_tag("tag:1x").is_err());
    }

    #[test]
    fn a_gpu_count_is_one_the_types_machines_come_with() {
        assert!(gpu_count_of("nvidia-tesla-t4", 4).is_ok());
        let t4 = gpu_count_of("nvidia-tesla-t4", 16).unwrap_err();
        assert_eq!(t4.message, "no GKE node has 16 `nvidia-tesla-t4`: its machines come with at most 4");
        assert!(gpu_count_of("nvidia-tesla-a100", 16).is_ok(), "a2-megagpu-16g");
        assert!(gpu_count_of("nvidia-h100-mega-80gb", 1).is_ok(), "one GPU of a node's eight");
        assert!(gpu_count_of("nvidia-gb200", 8).is_err());
        assert!(gpu_count_of("nvidia-future-x", 3).is_ok(), "a type only the policy knows");
    }

    #[test]
    fn image_names_follow_the_distribution_reference_grammar() {
        for good in [
            "ubuntu:24.04",
            "us-docker.pkg.dev/acme/devbox/jupyter:2024.06",
            "Registry.IO/img:1",
            "localhost:5000/a/b:1",
            "ghcr.io/a__b/c-d--e/f.g:1",
            "registry:5000/img:1",
        ] {
            assert!(image(good).is_ok(), "{good}");
        }
        for bad in ["a..b:1", "a___b/c:1", "registry:99999/img:1", "Ubuntu/x:1", "img-:1", "-img:1", "a/.b:1", "reg.io:/x:1"] {
            assert!(image(bad).unwrap_err().message.contains("is not a container image reference"), "{bad}");
        }
    }

    #[test]
    fn revisions_are_what_git_check_ref_format_takes() {
        for good in ["main", "refs/tags/v1.2", "release/2024.06", "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "feature-x"] {
            assert!(git_revision(good).is_ok(), "{good}");
        }
        for bad in [
            "../../etc",
            "-main",
            "main~1",
            "a..b",
            "x/.hidden",
            "x.lock",
            "a//b",
            "/main",
            "main/",
            "main.",
            "@",
            "a@{1}",
            "a b",
            "a*",
            "a\\b",
            "",
        ] {
            assert!(git_revision(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_and_server_urls_are_ones_argo_cd_and_flux_can_use() {
        for good in [
            "https://github.com/acme/devboxes.git",
            "ssh://git@github.com/acme/devboxes.git",
            "ssh://git@gitlab.example.com:2222/acme/devboxes.git",
            "git@github.com:acme/devboxes.git",
        ] {
            assert!(repo_url(good).is_ok(), "{good}");
        }
        for bad in [
            "https://",
            "https:///acme",
            "https://github.com",
            "ssh://git@github.com:acme/devboxes.git",
            "git@:x",
            "ftp://x/y",
            "http s://x/y",
        ] {
            assert!(repo_url(bad).unwrap_err().message.contains("not a Git URL"), "{bad}");
        }
        for leaky in [
            "https://user:pass@github.com/acme/devboxes.git",
            "https://ghp_token@github.com/acme/devboxes.git",
            "ssh://git:pw@github.com/a/b.git",
        ] {
            assert!(repo_url(leaky).unwrap_err().message.contains("credentials"), "{leaky}");
        }
        assert!(server_url("https://kubernetes.default.svc").is_ok());
        assert!(server_url("https://10.0.0.1:6443").is_ok());
        for bad in ["https://", "http://x", "https://:443"] {
            assert!(server_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names_reserved_and_secret_looking() {
        assert!(env_var("EDITOR", "vim", &[]).is_ok());
        assert!(env_var("1X", "", &[]).is_err());
        assert!(env_var("MY-VAR", "", &[]).is_err());
        assert!(!env_var("HOME", "/x", &[]).unwrap_err().warning);
        let defined = |n: &str| ["A_PATH", "B_ROOT", "Z_DIR"].contains(&n);
        assert!(env_later_reference("B_ROOT", "$(A_PATH)/x:$(HOME)/y:$(whoami)", defined).is_ok(), "earlier, ours, or no variable");
        assert!(env_later_reference("B_ROOT", "$$(Z_DIR) and $(Z_DIR", defined).is_ok(), "an escaped `$`, an unclosed reference");
        let later = env_later_reference("B_ROOT", "x $$$(Z_DIR)", defined).unwrap_err();
        assert!(later.warning && later.message.starts_with("`$(Z_DIR)` stays as written in `B_ROOT`"), "{}", later.message);
        let own = env_later_reference("PATH", "/x:$(PATH)", |_| false).unwrap_err();
        assert!(own.message.contains("`PATH`'s own value") && !own.help[0].contains("rename"), "{own:?}");

        let secret = env_var("GITHUB_TOKEN", "ghp_x", &[]).unwrap_err();
        assert!(!secret.warning);
        assert_eq!(secret.help.len(), 2);
        assert!(env_var("GITHUB_TOKEN", "", &[]).is_ok(), "an empty value commits nothing");
        assert!(env_var("TOKENIZERS_PARALLELISM", "false", &["TOKENIZERS_PARALLELISM".into()]).is_ok());
        // Allowing a name allows that name only.
        assert!(env_var("HF_TOKEN", "x", &["TOKENIZERS_PARALLELISM".into()]).is_err());
    }

    #[test]
    fn values_the_application_set_would_evaluate_are_refused() {
        let finding = repo_url("https://github.com/acme/{{.path}}.git").unwrap_err();
        assert_eq!(
            finding.message,
            "`https://github.com/acme/{{.path}}.git` holds `{{`, which the ApplicationSet controller would evaluate as a Go template"
        );
        assert!(git_revision("{{.path.basename}}").is_err());
        assert!(git_revision("release-{1}").is_ok(), "one brace is Git's business");
    }

    #[test]
    fn tailscale_moving_tags_are_not_pinned() {
        for moving in ["ghcr.io/tailscale/tailscale:stable", "tailscale/tailscale:unstable"] {
            assert!(tailscale_image_version(moving).is_err(), "{moving}");
        }
        let digest = format!("ghcr.io/tailscale/tailscale:stable@sha256:{}", "a".repeat(64));
        assert!(tailscale_image_version(&digest).is_ok(), "a digest pins it");
    }

    #[test]
    fn tailscale_images_old_enough_to_lack_the_health_check_are_refused() {
        for ok in [
            "ghcr.io/tailscale/tailscale:v1.80.3",
            "ghcr.io/tailscale/tailscale:v1.78.0",
            "tailscale/tailscale:1.90",
            "registry.example.com:5000/mirror/tailscale:v2.0.0",
            "ghcr.io/tailscale/tailscale@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(tailscale_image_version(ok).is_ok(), "{ok}");
        }
        for old in
            ["ghcr.io/tailscale/tailscale:v1.76.6", "tailscale/tailscale:v1.77.0-pre", "registry.example.com:5000/ts:1.50.0@sha256:00"]
        {
            let finding = tailscale_image_version(old).unwrap_err();
            assert!(
                finding.message.ends_with("is older than 1.78, the first that serves the health check the sidecar's probes ask for"),
                "{old}: {}",
                finding.message
            );
        }
    }

    #[test]
    fn a_known_gpu_only_on_the_box_s_architecture() {
        assert!(gpu_arch("nvidia-l4", Arch::Amd64).is_ok());
        assert!(gpu_arch("nvidia-gb200", Arch::Arm64).is_ok());
        assert!(gpu_arch("nvidia-x9000", Arch::Arm64).is_ok(), "a type only the policy knows is not judged");
        let t4 = gpu_arch("nvidia-tesla-t4", Arch::Arm64).unwrap_err();
        assert_eq!(t4.message, "GKE has `nvidia-tesla-t4` only on amd64 nodes, and this box is arm64");
        assert_eq!(t4.help, vec!["set `arch = \"amd64\"` (the image needs a build for it), or pick a GPU of arm64 nodes: nvidia-gb200"]);
        assert!(gpu_arch("nvidia-gb200", Arch::Amd64).unwrap_err().message.contains("only on arm64 nodes"));
    }

    #[test]
    fn env_values_a_process_can_be_started_with() {
        assert!(env_var("X", "a\0b", &[]).unwrap_err().message.contains("NUL"));
        assert!(env_var("X", "line\nbreak\ttab\u{1b}[0m", &[]).is_ok(), "only NUL ends a C string");
        // `X=` plus the value plus the closing NUL, exactly at the limit and one byte over.
        let fits = "a".repeat(MAX_ENV_ENTRY_BYTES - 3);
        assert!(env_var("X", &fits, &[]).is_ok());
        let over = env_var("X", &format!("{fits}a"), &[]).unwrap_err();
        assert_eq!(over.message, "`X` takes 131073 bytes in the environment, more than the 131072 Linux passes for one variable");
    }

    #[test]
    fn the_policy_schema_names_every_secret_word() {
        let schema = crate::schema::schema_for::<crate::model::DevboxConfig>();
        let doc = schema.as_value()["definitions"]["Policy"]["properties"]["allow_secret_env"]["description"].as_str().unwrap().to_string();
        for word in SECRET_WORDS {
            assert!(doc.contains(&format!("`{word}`")), "{word} missing from: {doc}");
        }
    }

    #[test]
    fn emails() {
        assert!(email("alice@example.com").is_ok());
        assert!(email("alice.o'hara+devbox@mail.example.co.uk").is_ok());
        assert!(email(&format!("{}@example.com", "a".repeat(242))).is_ok(), "254 characters");
        assert!(email(&format!("{}@example.com", "a".repeat(243))).is_err(), "255 characters");
        for bad in [
            "alice",
            "@example.com",
            "alice@localhost",
            "Alice <alice@example.com>",
            "a@b@c.d",
            "dave@-example.com",
            "dave@example-.com",
            "dave@example..com",
            ".dave@example.com",
            "dave.@example.com",
            "da..ve@example.com",
            "dave\u{202E}moc@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
