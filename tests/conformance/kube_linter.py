#!/usr/bin/env python3
"""kube-linter's checks that are on by default, on every object under out/, as
`kube-linter lint out/` runs them: one lint context of all the files, and an object's
`ignore-check.kube-linter.io/CHECK` (or `kube-linter.io/ignore-all`) annotation exempting it
from that check, whatever the configuration (pkg/ignore/ignore.go).

kube-linter is a Go binary outside the registries CI can reach, so this encodes its rules as
stackrox/kube-linter states them: pkg/builtinchecks/yamls/*.yaml (which checks run by default,
and their parameters; docs/generated/checks.md lists them) and pkg/templates/*/template.go
(what each template does). Left out, because devbox-gen emits none of the kinds they look at:
the PodDisruptionBudget checks (pdb-max-unavailable, pdb-min-available,
pdb-unhealthy-pod-eviction-policy).

    kube_linter.py OUT_DIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundles import Report, dig, load_all, object_files, pod_spec

IGNORE_PREFIX = "ignore-check.kube-linter.io/"
IGNORE_ALL = "kube-linter.io/ignore-all"

# latest-tag's BlockList (pkg/builtinchecks/yamls/latest-tag.yaml).
LATEST_TAG = [re.compile(r".*:(latest)$"), re.compile(r"^[^:]*$"), re.compile(r"(.*/[^:]+)$")]
# env-var-secret (pkg/builtinchecks/yamls/env-var-secret.yaml): Go's regexp, matched anywhere.
SECRET_NAME = re.compile(r"(?i).*secret.*")
# sensitive-host-mounts and docker-sock (pkg/builtinchecks/yamls/).
HOST_DIRS = [
    re.compile(p) for p in (r"^/$", r"^/boot$", r"^/dev$", r"^/etc$", r"^/lib$", r"^/proc$", r"^/sys$", r"^/usr$", r"docker.sock$")
]
UNSAFE_SYSCTLS = ("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.", "net.")
# k8s.io/apimachinery validation.IsValidPortName: an IANA service name.
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def ignored(obj: dict, check: str) -> bool:
    annotations = dig(obj, "metadata", "annotations") or {}
    return IGNORE_ALL in annotations or f"{IGNORE_PREFIX}{check}" in annotations


def all_containers(spec: dict) -> list[dict]:
    """PodSpec.AllContainers(): init containers, then containers."""
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def pod_template_labels(obj: dict) -> dict | None:
    if obj.get("kind") == "Pod":
        return dig(obj, "metadata", "labels") or {}
    paths = {"CronJob": ("spec", "jobTemplate", "spec", "template")}
    template = dig(obj, *paths.get(obj.get("kind", ""), ("spec", "template")))
    return (dig(template, "metadata", "labels") or {}) if pod_spec(obj) is not None else None


def is_zero(quantity: Any) -> bool:
    """A CPU or memory quantity that is unset or zero (`0`, `0m`, `0Gi`)."""
    if quantity is None:
        return True
    number = re.match(r"^[+-]?(\d+\.?\d*|\.\d+)", str(quantity))
    return number is None or float(number.group(1)) == 0


def valid_port_name(name: str) -> bool:
    return len(name) <= 15 and bool(PORT_NAME.match(name)) and "--" not in name and any(c.isalpha() for c in name)


def probe_port_exposed(container: dict, probe: dict | None) -> str | None:
    """util.CheckProbePort: an httpGet or tcpSocket probe's port among the container's TCP ports."""
    if not probe:
        return None
    ports: set[Any] = set()
    for port in container.get("ports") or []:
        if port.get("protocol", "TCP") not in ("", "TCP"):
            continue
        ports.add(port.get("containerPort"))
        ports.add(port.get("name", ""))
    for kind in ("httpGet", "tcpSocket"):
        port = dig(probe, kind, "port")
        if port is not None and port not in ports:
            return f"does not expose port {port} for the {kind}"
    grpc = dig(probe, "grpc", "port")
    if grpc is not None and grpc not in ports:
        return f"does not expose port {grpc} for the gRPC check"
    return None


def effective(spec: dict, container: dict, field: str) -> Any:
    value = dig(container, "securityContext", field)
    return value if value is not None else dig(spec, "securityContext", field)


def check_workload(obj: dict, spec: dict, context: list[dict], fail) -> None:
    namespace = dig(obj, "metadata", "namespace")
    on = lambda check: not ignored(obj, check)  # noqa: E731

    for check, field in (("host-ipc", "hostIPC"), ("host-network", "hostNetwork"), ("host-pid", "hostPID")):
        if on(check) and spec.get(field):
            fail(check, f"spec.{field} is true")
    if on("deprecated-service-account-field") and spec.get("serviceAccount") not in (None, spec.get("serviceAccountName")):
        fail("deprecated-service-account-field", "serviceAccount is set and differs from serviceAccountName")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or ""
    if on("non-existent-service-account") and account not in ("", "default"):
        known = {
            dig(o, "metadata", "name")
            for o in context
            if o.get("kind") == "ServiceAccount" and dig(o, "metadata", "namespace") == namespace
        }
        if account not in known:
            fail("non-existent-service-account", f'serviceAccount "{account}" not found')
    for volume in spec.get("volumes") or []:
        path = dig(volume, "hostPath", "path")
        if path is not None and any(p.search(path) for p in HOST_DIRS):
            fail("sensitive-host-mounts", f"host path {path} is mounted")
    for sysctl in dig(spec, "securityContext", "sysctls") or []:
        if on("unsafe-sysctls") and str(sysctl.get("name", "")).startswith(UNSAFE_SYSCTLS):
            fail("unsafe-sysctls", f"sysctl {sysctl.get('name')} is unsafe")

    selector = dig(obj, "spec", "selector", "matchLabels")
    labels = pod_template_labels(obj) or {}
    if on("mismatching-selector") and selector is not None and any(labels.get(k) != v for k, v in selector.items()):
        fail("mismatching-selector", f"selector {selector} does not match the pod template's labels {labels}")
    replicas = dig(obj, "spec", "replicas")
    replicated = obj.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet") and (replicas if replicas is not None else 1) >= 2
    if on("no-anti-affinity") and replicated and not dig(spec, "affinity", "podAntiAffinity"):
        fail("no-anti-affinity", f"{replicas} replicas and no podAntiAffinity")

    for container in all_containers(spec):
        name = container.get("name")
        sc = container.get("securityContext")
        where = lambda check, message, name=name: fail(check, f'container "{name}" {message}')  # noqa: E731
        env_names = [e.get("name") for e in container.get("env") or []]
        if on("duplicate-env-var") and len(env_names) != len(set(env_names)):
            where("duplicate-env-var", f"has duplicate environment variables {sorted({n for n in env_names if env_names.count(n) > 1})}")
        for env in container.get("env") or []:
            if on("env-var-secret") and SECRET_NAME.search(env.get("name", "")) and env.get("value"):
                where("env-var-secret", f"has the environment variable {env['name']} with a literal value")
        image = container.get("image", "")
        if on("latest-tag") and any(p.search(image) for p in LATEST_TAG):
            where("latest-tag", f"runs {image!r}, which names no tag or :latest")
        for port in container.get("ports") or []:
            if on("ssh-port") and port.get("containerPort") == 22 and port.get("protocol", "TCP") == "TCP":
                where("ssh-port", "exposes port 22")
            if on("invalid-target-ports") and port.get("name") and not valid_port_name(port["name"]):
                where("invalid-target-ports", f"names a port {port['name']!r}, not an IANA service name")
        if on("no-read-only-root-fs") and not (sc or {}).get("readOnlyRootFilesystem"):
            where("no-read-only-root-fs", "does not have a read-only root file system")
        if on("privileged-container") and (sc or {}).get("privileged"):
            where("privileged-container", "is privileged")
        if (
            on("privilege-escalation-container")
            and sc
            and (sc.get("allowPrivilegeEscalation") or sc.get("privileged") or "SYS_ADMIN" in (dig(sc, "capabilities", "add") or []))
        ):
            where("privilege-escalation-container", "allows privilege escalation")
        capabilities = (sc or {}).get("capabilities")
        if on("drop-net-raw-capability") and capabilities is not None:
            dropped = capabilities.get("drop") or []
            if not any(c in ("NET_RAW", "ALL", "all") for c in dropped):
                where("drop-net-raw-capability", f"does not drop NET_RAW (drops {dropped})")
        user, non_root, group = (
            effective(spec, container, "runAsUser"),
            effective(spec, container, "runAsNonRoot"),
            effective(spec, container, "runAsGroup"),
        )
        if on("run-as-non-root"):
            if group == 0:
                where("run-as-non-root", "is set to runAsGroup 0")
            if not (user is not None and user > 0) and not non_root:
                where("run-as-non-root", "is not set to runAsNonRoot")
            elif not (user is not None and user > 0) and user == 0:
                where("run-as-non-root", "is set to runAsNonRoot, but runAsUser is 0")
        if on("unset-cpu-requirements") and is_zero(dig(container, "resources", "requests", "cpu")):
            where("unset-cpu-requirements", "has no CPU request")
        if on("unset-memory-requirements") and is_zero(dig(container, "resources", "limits", "memory")):
            where("unset-memory-requirements", "has no memory limit")
    # The probe-port checks skip init containers (util.PerNonInitContainerCheck).
    for container in spec.get("containers") or []:
        for check, probe in (("liveness-port", "livenessProbe"), ("readiness-port", "readinessProbe"), ("startup-port", "startupProbe")):
            problem = probe_port_exposed(container, container.get(probe))
            if on(check) and problem:
                fail(check, f'container "{container.get("name")}" {problem}')


def check_service(obj: dict, context: list[dict], fail) -> None:
    if obj.get("spec", {}).get("type") == "ExternalName" or ignored(obj, "dangling-service"):
        return
    selector = dig(obj, "spec", "selector") or {}
    if not selector:
        fail("dangling-service", "service has no selector specified")
        return
    namespace = dig(obj, "metadata", "namespace")
    for other in context:
        labels = pod_template_labels(other)
        if labels is not None and dig(other, "metadata", "namespace") == namespace and all(labels.get(k) == v for k, v in selector.items()):
            return
    fail("dangling-service", f"no pods found matching service labels ({selector})")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    report = Report("kube-linter (default checks)")
    files = [(path, doc) for path in object_files(out) for doc in load_all(path) if isinstance(doc, dict)]
    context = [doc for _, doc in files]
    workloads = 0
    for path, obj in files:
        where = f"{path.relative_to(out)} ({obj.get('kind')} {dig(obj, 'metadata', 'name')})"
        fail = lambda check, message, where=where: report.fail(f"{where}: {message} [{check}]")  # noqa: E731
        if str(obj.get("apiVersion", "")).startswith("extensions/v1beta") and not ignored(obj, "no-extensions-v1beta"):
            fail("no-extensions-v1beta", f"apiVersion {obj['apiVersion']} is deprecated")
        spec = pod_spec(obj)
        if spec is not None:
            workloads += 1
            check_workload(obj, spec, context, fail)
        elif obj.get("kind") == "Service":
            check_service(obj, context, fail)
            for port in dig(obj, "spec", "ports") or []:
                target = port.get("targetPort")
                if isinstance(target, str) and not valid_port_name(target) and not ignored(obj, "invalid-target-ports"):
                    fail("invalid-target-ports", f"targetPort {target!r} is not an IANA service name")
    report.check(bool(files), f"no objects under {out}")
    return report.finish(f"{len(files)} objects, {workloads} pod templates")


if __name__ == "__main__":
    sys.exit(main())
