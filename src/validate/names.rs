//! Kubernetes name rules, and the length budget every object name derived from a user's name
//! must fit in.

use super::Finding;

/// A StatefulSet's pods carry `controller-revision-hash: <name>-<hash>`, a label value of at
/// most 63 characters where the hash part takes 11: so a user's name may have 52.
pub(crate) const MAX_NAME_LEN: usize = 63 - 11;

/// The API server refuses a CronJob name longer than 52 characters: each Job it starts is named
/// after it plus 11 (`-` and the scheduled time in minutes), within a label value's 63
/// (kubernetes `pkg/apis/batch/validation`, `ValidateCronJobCreate`).
pub(crate) const MAX_CRON_JOB_NAME_LEN: usize = 52;

/// RFC 1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends, <= 63.
pub(crate) fn is_dns_label(text: &str) -> bool {
    text.len() <= 63 && has_label_characters(text)
}

/// An RFC 1123 label of any length: judged apart from the length, so a name that is only too
/// long hears about its length.
fn has_label_characters(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// The user's name (file stem) names the StatefulSet, the Service (an RFC 1035 label: it must
/// start with a letter), the home PVC and the pod.
/// `taken`: whether another user file has a name.
pub(crate) fn user_name(name: &str, taken: impl Fn(&str) -> bool) -> Result<(), Finding> {
    user_name_or(name, |usable| {
        if taken(usable) {
            format!("users/{usable}.toml, the usable name, is another user file: merge this one into it, or rename it to a name of its own")
        } else {
            format!("rename the file to users/{usable}.toml")
        }
    })
}

/// Whether `name` can name a box (a user file `users/NAME.toml` may have it).
pub(crate) fn is_user_name(name: &str) -> bool {
    user_name_or(name, str::to_string).is_ok()
}

/// [`user_name`], with `fix` saying what to do with a usable name instead of renaming a file
/// (`devbox-gen new` has no file yet).
pub(crate) fn user_name_or(name: &str, fix: impl Fn(&str) -> String) -> Result<(), Finding> {
    let suggestion = sanitize(name);
    if !has_label_characters(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        let mut finding = Finding::error(format!(
            "`{name}` cannot name a box: use lowercase letters, digits and `-`, starting with a letter and ending with a letter or digit"
        ));
        if let Some(s) = suggestion.filter(|s| s.len() <= MAX_NAME_LEN) {
            finding = finding.help(fix(&s));
        }
        return Err(finding);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Finding::error(format!(
            "`{name}` is {} characters; a box name may have at most {MAX_NAME_LEN}, so that its pod's `controller-revision-hash` label stays within Kubernetes' 63",
        name.len()
        ))
        .help(fix(name[..MAX_NAME_LEN].trim_end_matches('-'))));
    }
    Ok(())
}

/// A usable name close to `name`: transliterated to ASCII (`Zoë` is `zoe`, `Łukasz` is
/// `lukasz`, not `zo` and `ukasz`), lowercased, anything else a single `-`.
fn sanitize(name: &str) -> Option<String> {
    let mut out: String =
        deunicode::deunicode(name).to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches(|c: char| c == '-' || c.is_ascii_digit()).to_string();
    (!out.is_empty() && out != name).then_some(out)
}

pub(super) fn kubernetes_label(what: &str, value: &str) -> Result<(), Finding> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(Finding::error(format!("`{value}` is not a valid {what}"))
            .label("not an RFC 1123 label")
            .help("use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"))
    }
}

/// The boxes' namespace is devbox-gen's own: it labels it for the restricted Pod Security
/// Standard and, with `[quota]`, puts a LimitRange and a ResourceQuota in it, which hold every
/// pod there, not only the boxes. Kubernetes reserves the `kube-` prefix for its own namespaces (kubernetes.io,
/// "Namespaces"), where kube-proxy and the CNI run privileged; `default` is where everything
/// without a namespace lands; a GitOps engine's namespace (`engines`: engine, namespace) holds
/// the controllers that deliver the boxes.
pub(super) fn boxes_namespace(value: &str, engines: &[(&str, &str)]) -> Result<(), Finding> {
    let whose = if value.starts_with("kube-") {
        "Kubernetes' own namespace (the `kube-` prefix is reserved)".to_string()
    } else if value == "default" {
        "the namespace every object without one lands in".to_string()
    } else if let Some((engine, _)) = engines.iter().find(|(_, namespace)| *namespace == value) {
        format!("{engine}'s own namespace")
    } else {
        return Ok(());
    };
    Err(Finding::error(format!("`{value}` is {whose}, not one for the boxes"))
        .label("shared")
        .help("devbox-gen labels the boxes' namespace for the restricted Pod Security Standard and, with `[quota]`, puts a LimitRange and a ResourceQuota in it: every other pod there would be held to them")
        .help(format!("use a namespace of the boxes' own, like `{}` (the default)", crate::defaults::NAMESPACE)))
}

/// An engine's own namespace set to the boxes' default one (`namespace` unset).
pub(super) fn engine_in_boxes_namespace(boxes_namespace: &str) -> Finding {
    Finding::error(format!("`{boxes_namespace}` is the boxes' namespace (`namespace` is not set, so the default), not one for a GitOps engine"))
        .label("shared")
        .help("devbox-gen labels the boxes' namespace for the restricted Pod Security Standard and, with `[quota]`, puts a LimitRange and a ResourceQuota in it: the engine's controllers there would be held to them")
        .help(format!("name the engine's own namespace here, or set `namespace` to another one for the boxes than `{boxes_namespace}`"))
}

/// The longest cluster name: Argo CD names an Application `devboxes-namespace-<cluster>`, and
/// with label tracking an Application's name is a label value (at most 63 characters).
pub(super) const MAX_CLUSTER_NAME_LEN: usize = 63 - "devboxes-namespace-".len();

pub(super) fn cluster_name_length(value: &str) -> Result<(), Finding> {
    if value.len() <= MAX_CLUSTER_NAME_LEN {
        Ok(())
    } else {
        Err(Finding::error(format!("the cluster name is {} characters long, more than {MAX_CLUSTER_NAME_LEN}", value.len()))
            .label("too long")
            .help("delivery objects are named after the cluster (`devboxes-namespace-<cluster>`), and Argo CD's label tracking limits names to 63 characters: use a shorter name"))
    }
}

/// A DNS subdomain as Kubernetes checks names (`IsDNS1123Subdomain`): dot-separated parts of
/// lowercase alphanumerics and `-`, alphanumeric at both ends, at most 253 in all. Unlike DNS,
/// it puts no limit of 63 on a part.
pub(crate) fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(has_label_characters)
}

/// An RFC 1123 subdomain (Secret, StorageClass, claim names).
pub(super) fn kubernetes_subdomain(what: &str, value: &str) -> Result<(), Finding> {
    if is_dns_subdomain(value) {
        Ok(())
    } else {
        Err(Finding::error(format!("`{value}` is not a valid {what}")).label("not an RFC 1123 subdomain").help(
            "use at most 253 lowercase letters, digits, `-` and `.`, each part between dots starting and ending with a letter or digit",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boxes_namespace_is_shared_with_nothing_else() {
        let engines = [("Argo CD", "argocd"), ("Flux", "flux-system")];
        assert!(boxes_namespace("devboxes", &engines).is_ok());
        assert!(boxes_namespace("kubeflow", &engines).is_ok(), "only the `kube-` prefix is reserved");
        for (namespace, whose) in [
            ("kube-system", "`kube-system` is Kubernetes' own namespace (the `kube-` prefix is reserved), not one for the boxes"),
            ("kube-devboxes", "`kube-devboxes` is Kubernetes' own namespace (the `kube-` prefix is reserved), not one for the boxes"),
            ("default", "`default` is the namespace every object without one lands in, not one for the boxes"),
            ("flux-system", "`flux-system` is Flux's own namespace, not one for the boxes"),
        ] {
            assert_eq!(boxes_namespace(namespace, &engines).unwrap_err().message, whose);
        }
        assert!(boxes_namespace("flux-system", &engines[..1]).is_ok(), "without Flux, its namespace is free");
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in ["alice", "bob-2", "a", &"x".repeat(MAX_NAME_LEN)] {
            assert!(user_name(name, |_| false).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_names_kubernetes_or_the_pod_label_would_refuse() {
        for name in ["Alice", "-a", "a-", "a_b", "1alice", "", "a.b", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(user_name(name, |_| false).is_err(), "{name}");
        }
    }

    #[test]
    fn suggests_a_usable_file_name() {
        let finding = user_name("Alice.Smith", |_| false).unwrap_err();
        assert_eq!(finding.help, vec!["rename the file to users/alice-smith.toml"]);
        let taken = user_name("Zed", |name| name == "zed").unwrap_err();
        assert!(taken.help[0].starts_with("users/zed.toml, the usable name, is another user file"), "{:?}", taken.help);
        for (name, usable) in [("Zoë", "zoe"), ("Łukasz", "lukasz"), ("José García", "jose-garcia"), ("søren_k", "soren-k")] {
            assert_eq!(user_name(name, |_| false).unwrap_err().help, vec![format!("rename the file to users/{usable}.toml")], "{name}");
        }
        // Longer than a DNS label too: still told about the length, not the characters.
        for length in [60, 70] {
            let finding = user_name(&"y".repeat(length), |_| false).unwrap_err();
            assert!(finding.message.contains("at most 52"), "{}", finding.message);
            assert_eq!(finding.help, vec![format!("rename the file to users/{}.toml", "y".repeat(MAX_NAME_LEN))]);
        }
    }

    #[test]
    fn subdomains_allow_dots() {
        assert!(kubernetes_subdomain("x", "premium-rwo").is_ok());
        assert!(kubernetes_subdomain("x", "a.b.c").is_ok());
        assert!(kubernetes_subdomain("x", "A").is_err());
        assert!(kubernetes_subdomain("x", "a..b").is_err());
        // Kubernetes limits the whole name, not a part: 64 characters between dots pass.
        assert!(kubernetes_subdomain("x", &"a".repeat(64)).is_ok());
        assert!(kubernetes_subdomain("x", &"a".repeat(253)).is_ok());
        assert!(kubernetes_subdomain("x", &"a".repeat(254)).is_err());
    }
}
