#!/usr/bin/env python3
"""Pod Security Standards, `restricted` profile, on every pod template under out/.

No PyPI or npm tool evaluates the Pod Security Standards offline (the reference is the
pod-security-admission Go library in the API server; kubescape, kyverno and polaris are
Go binaries outside the registries CI can reach), so this implements the controls as
https://kubernetes.io/docs/concepts/security/pod-security-standards/ lists them for
Kubernetes v1.33 to v1.37: every `baseline` control, then the `restricted` ones.
Stricter than the standard in two places: any sysctl is refused (baseline allows a
"safe" set), since a developer box needs none, and the optional "Non-root groups"
control is enforced (no runAsGroup, fsGroup or supplementalGroups of 0).

    pss_restricted.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundles import Report, containers, dig, load_all, object_files, pod_spec

# fmt: off
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
# fmt: on
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def check_pod(spec: dict, pod_annotations: dict, where: str, report: Report) -> None:
    fail = lambda msg: report.fail(f"{where}: {msg}")  # noqa: E731
    psc = spec.get("securityContext") or {}

    # --- baseline -------------------------------------------------------------------
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            fail(f"Host Namespaces: spec.{field} is true")
    if dig(psc, "windowsOptions", "hostProcess"):
        fail("HostProcess: spec.securityContext.windowsOptions.hostProcess is true")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            fail(f"HostPath Volumes: volume {volume.get('name')} is a hostPath")
    if psc.get("sysctls"):
        fail(f"Sysctls: spec.securityContext.sysctls is set ({[s.get('name') for s in psc['sysctls']]})")
    for key, value in (pod_annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            fail(f"AppArmor: annotation {key}={value}")
    for key, value in (pod_annotations or {}).items():
        if (
            key == "seccomp.security.alpha.kubernetes.io/pod" or key.startswith("container.seccomp.security.alpha.kubernetes.io/")
        ) and not (value in ("runtime/default", "docker/default") or value.startswith("localhost/")):
            fail(f"Seccomp: annotation {key}={value}")
    for ctx_where, ctx in [("spec.securityContext", psc)] + [
        (f"{n}.securityContext", c.get("securityContext") or {}) for n, c in containers(spec)
    ]:
        apparmor = dig(ctx, "appArmorProfile", "type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            fail(f"AppArmor: {ctx_where}.appArmorProfile.type is {apparmor}")
        selinux = ctx.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES:
            fail(f"SELinux: {ctx_where}.seLinuxOptions.type is {selinux.get('type')}")
        for field in ("user", "role"):
            if selinux.get(field):
                fail(f"SELinux: {ctx_where}.seLinuxOptions.{field} is set")
        seccomp = dig(ctx, "seccompProfile", "type")
        if seccomp not in (None, "RuntimeDefault", "Localhost"):
            fail(f"Seccomp: {ctx_where}.seccompProfile.type is {seccomp}")
        if ctx.get("runAsUser") == 0:
            fail(f"Running as Non-root user: {ctx_where}.runAsUser is 0")
        # "Non-root groups", an optional control of the standard: enforced here.
        for field in ("runAsGroup", "fsGroup"):
            if ctx.get(field) == 0:
                fail(f"Non-root groups: {ctx_where}.{field} is 0")
        if 0 in (ctx.get("supplementalGroups") or []):
            fail(f"Non-root groups: {ctx_where}.supplementalGroups has 0")

    # --- per container, baseline and restricted ---------------------------------------
    pod_non_root = psc.get("runAsNonRoot") is True
    pod_seccomp = dig(psc, "seccompProfile", "type") in ("RuntimeDefault", "Localhost")
    if not list(containers(spec)):
        fail("the pod has no containers")
    for name, c in containers(spec):
        sc: dict[str, Any] = c.get("securityContext") or {}
        at = f"{name}.securityContext"
        if sc.get("privileged"):
            fail(f"Privileged Containers: {at}.privileged is true")
        if dig(sc, "windowsOptions", "hostProcess"):
            fail(f"HostProcess: {at}.windowsOptions.hostProcess is true")
        if sc.get("procMount", "Default") != "Default":
            fail(f"/proc Mount Type: {at}.procMount is {sc.get('procMount')}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                fail(f"Host Ports: {name} port {port.get('containerPort')} has hostPort {port['hostPort']}")
        handlers = [(p, c.get(p)) for p in PROBES] + [(f"lifecycle.{h}", dig(c, "lifecycle", h)) for h in ("postStart", "preStop")]
        for what, handler in handlers:
            for kind in ("httpGet", "tcpSocket"):
                host = dig(handler, kind, "host")
                if host:
                    fail(f"Host Probes / Lifecycle Hooks: {name}.{what}.{kind}.host is {host}")
        caps = sc.get("capabilities") or {}
        added = set(caps.get("add") or [])
        if added - BASELINE_CAPABILITIES:
            fail(f"Capabilities (baseline): {at}.capabilities.add has {sorted(added - BASELINE_CAPABILITIES)}")
        # restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"Privilege Escalation: {at}.allowPrivilegeEscalation is {sc.get('allowPrivilegeEscalation')!r}, must be false")
        if sc.get("runAsNonRoot") is False or not (pod_non_root or sc.get("runAsNonRoot") is True):
            fail(
                f"Running as Non-root: neither spec.securityContext.runAsNonRoot nor {at}.runAsNonRoot is true (or the container sets false)"
            )
        if not (pod_seccomp or dig(sc, "seccompProfile", "type") in ("RuntimeDefault", "Localhost")):
            fail(f"Seccomp: neither spec.securityContext.seccompProfile nor {at}.seccompProfile is RuntimeDefault or Localhost")
        if "ALL" not in (caps.get("drop") or []):
            fail(f"Capabilities: {at}.capabilities.drop does not include ALL")
        if added - {"NET_BIND_SERVICE"}:
            fail(f"Capabilities: {at}.capabilities.add has {sorted(added - {'NET_BIND_SERVICE'})}; only NET_BIND_SERVICE is allowed")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            fail(f"Volume Types: volume {volume.get('name')} is {sorted(kinds - RESTRICTED_VOLUMES)}")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    report = Report("pod security standard (restricted)")
    pods = objects = 0
    for path in object_files(out):
        for doc in load_all(path):
            objects += 1
            spec = pod_spec(doc) if isinstance(doc, dict) else None
            if spec is None:
                continue
            pods += 1
            template_meta = dig(doc, "spec", "template", "metadata") or doc.get("metadata") or {}
            check_pod(spec, template_meta.get("annotations") or {}, f"{path.relative_to(out)}", report)
    report.check(objects > 0, f"no objects under {out}")
    return report.finish(f"{pods} pod templates in {objects} objects meet `restricted`")


if __name__ == "__main__":
    sys.exit(main())
