#!/usr/bin/env python3
"""Each conformance check must be able to fail: break one running box's bundle in one
way, run the check on it, and expect it to refuse (exit 1, not a usage or tool error).

    selftest.py SOURCE_REPO CASE       run one case (exit 0 when the check refused it)
    selftest.py --list                 the cases

SOURCE_REPO is a built config repo (devbox.toml, users/, out/); the first running box
with a StatefulSet is copied into a fresh repo of its own for each case.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bundles import Repo, containers, load_one, pod_spec  # noqa: E402

Fixture = Path  # the temporary repo


def statefulset(repo: Fixture) -> Path:
    return next(repo.glob("out/**/statefulset-*.yaml"))


def rewrite(path: Path, change: Callable[[dict], None], after: Callable[[str], str] = lambda t: t) -> None:
    header = path.read_text().splitlines()[0] + "\n"
    obj = load_one(path)
    change(obj)
    path.write_text(header + after(yaml.safe_dump(obj, sort_keys=False)))


def main_container(obj: dict) -> dict:
    return next(c for _, c in containers(pod_spec(obj)) if c["name"] == "devbox")


def unknown_field(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: pod_spec(o).update(bogusField="x"))


def wrong_type(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: o["spec"].update(replicas="1"))


def unquoted_yaml11(repo: Fixture) -> None:
    """An env value written as the TOML says, but left unquoted: YAML 1.1 reads a bool."""
    user = next(repo.glob("users/*.toml"))
    text = user.read_text()
    text += "\n" if not text.endswith("\n") else ""
    if "[env]" in text:
        text = text.replace("[env]\n", '[env]\nSELFTEST_FLAG = "on"\n', 1)
    else:
        text += '\n[env]\nSELFTEST_FLAG = "on"\n'
    user.write_text(text)
    rewrite(
        statefulset(repo),
        lambda o: main_container(o)["env"].append({"name": "SELFTEST_FLAG", "value": "on"}),
        lambda t: t.replace("value: 'on'", "value: on"),
    )


def privileged(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: main_container(o)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True))


def sidecar_state_on_home(repo: Fixture) -> None:
    """The tailscale sidecar keeps its state on the home volume, which the person can read."""

    def change(o: dict) -> None:
        sidecar = next(c for _, c in containers(pod_spec(o)) if c["name"] == "tailscale")
        sidecar["volumeMounts"].append({"name": "home", "mountPath": "/var/lib/tailscale", "subPath": ".tailscale"})

    rewrite(statefulset(repo), change)


def token_in_main_container(repo: Fixture) -> None:
    """The person's container mounts the service-account token meant for the sidecar."""

    def change(o: dict) -> None:
        token = next(v["name"] for v in pod_spec(o)["volumes"] if "projected" in v)
        main_container(o)["volumeMounts"].append({"name": token, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})

    rewrite(statefulset(repo), change)


def writable_dataset(repo: Fixture) -> None:
    """A dataset claim mounted writable (or, in a box without one, a claim nobody listed)."""

    def change(o: dict) -> None:
        spec = pod_spec(o)
        datasets = [v for v in spec["volumes"] if v["name"].startswith("dataset-")]
        if datasets:
            datasets[0]["persistentVolumeClaim"]["readOnly"] = False
            for mount in main_container(o)["volumeMounts"]:
                if mount["name"] == datasets[0]["name"]:
                    mount.pop("readOnly", None)
        else:
            spec["volumes"].append({"name": "dataset-selftest", "persistentVolumeClaim": {"claimName": "selftest-data"}})
            main_container(o)["volumeMounts"].append({"name": "dataset-selftest", "mountPath": "/data/selftest"})

    rewrite(statefulset(repo), change)


def spot_untolerated(repo: Fixture) -> None:
    """The Spot node selector without its toleration (a box that would stay Pending)."""

    def change(o: dict) -> None:
        spec = pod_spec(o)
        spec.setdefault("nodeSelector", {})["cloud.google.com/gke-spot"] = "true"
        spec["tolerations"] = [t for t in spec.get("tolerations") or [] if t.get("key") != "cloud.google.com/gke-spot"]

    rewrite(statefulset(repo), change)


def host_path(repo: Fixture) -> None:
    def change(o: dict) -> None:
        pod_spec(o)["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}})
        main_container(o)["volumeMounts"].append({"name": "docker", "mountPath": "/var/run/docker.sock"})

    rewrite(statefulset(repo), change)


def capability(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: main_container(o)["securityContext"].update(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}))


def root_user(repo: Fixture) -> None:
    def change(o: dict) -> None:
        pod_spec(o)["securityContext"].update(runAsNonRoot=False, runAsUser=0)

    rewrite(statefulset(repo), change)


def unconfined(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: main_container(o)["securityContext"].update(seccompProfile={"type": "Unconfined"}))


def many_skips(repo: Fixture) -> None:
    notes = {f"checkov.io/skip{i + 4}": f"CKV_K8S_{10 + i}=because" for i in range(1, 5)}
    rewrite(statefulset(repo), lambda o: o["metadata"].setdefault("annotations", {}).update(notes))


def missing_resource(repo: Fixture) -> None:
    path = next(repo.glob("out/**/kustomization.yaml"))
    rewrite(path, lambda o: o["resources"].append("deployment-missing.yaml"))


def no_header(repo: Fixture) -> None:
    path = statefulset(repo)
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")


def replicas_vs_state(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: o["spec"].update(replicas=0))


def no_prune_protection(repo: Fixture) -> None:
    path = next(repo.glob("out/**/persistentvolumeclaim-*.yaml"))
    rewrite(path, lambda o: o["metadata"]["annotations"].pop("argocd.argoproj.io/sync-options", None))


def bad_label(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: o["metadata"]["labels"].update(team="ML platform"))


def bad_sshd_config(repo: Fixture) -> None:
    path = next(repo.glob("out/**/configmap-*.yaml"))
    rewrite(path, lambda o: o["data"].update(sshd_config=o["data"]["sshd_config"] + "PermitRootLogin maybe\n"))


def truncated_key(repo: Fixture) -> None:
    path = next(repo.glob("out/**/configmap-*.yaml"))
    rewrite(path, lambda o: o["data"].update(authorized_keys=o["data"]["authorized_keys"][:60] + "\n"))


WAVE = "argocd.argoproj.io/sync-wave"


def early_home_volume(repo: Fixture) -> None:
    """The home PVC one sync wave before its StatefulSet (-1 against the default 0)."""
    wave = int(str((load_one(statefulset(repo))["metadata"].get("annotations") or {}).get(WAVE, "0")))
    claims = repo.glob("out/**/persistentvolumeclaim-*.yaml")
    home = next(p for p in claims if load_one(p)["metadata"]["labels"].get("devbox-gen.dev/role") == "home")
    rewrite(home, lambda o: o["metadata"].setdefault("annotations", {}).update({WAVE: str(wave - 1)}))


def ordered_ready(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: o["spec"].update(podManagementPolicy="OrderedReady"))


def flux_ssh_without_secret(repo: Fixture) -> None:
    path = next(repo.glob("out/_gitops/flux/*/gitrepository-*.yaml"), None)
    if path is None:
        raise SystemExit('no out/_gitops/flux/*/gitrepository-*.yaml: the source repo has no gitops = ["flux"]')

    def change(o: dict) -> None:
        url = urlsplit(o["spec"]["url"])
        o["spec"]["url"] = f"ssh://git@{url.hostname}{url.path}"
        o["spec"].pop("secretRef", None)

    rewrite(path, change)


def over_quota(repo: Fixture) -> None:
    """devbox.toml's [quota] cpu below what the one running box requests."""
    settings = repo / "devbox.toml"
    text = settings.read_text()
    if "\n[quota]\n" not in text:
        raise SystemExit("no [quota] in devbox.toml: the source repo sets none")
    head, _, rest = text.partition("\n[quota]\n")
    settings.write_text(f'{head}\n[quota]\ncpu = "1m"\n' + "\n".join(line for line in rest.split("\n") if not line.startswith("cpu =")))


def flux_pods_before_quota(repo: Fixture) -> None:
    """The user's Flux Kustomization no longer waits for the one that applies the quota."""
    path = next((p for p in repo.glob("out/_gitops/flux/*/kustomization-devbox-*.yaml")), None)
    if path is None:
        raise SystemExit('no out/_gitops/flux/*/kustomization-devbox-*.yaml: the source repo has no gitops = ["flux"]')
    rewrite(path, lambda o: o["spec"].pop("dependsOn", None))


CHECKS = {
    "k8s": ["bash", str(HERE / "k8s_validate.sh"), "{out}", "1.33"],
    "kustomize": ["bash", str(HERE / "kustomize.sh"), "{out}"],
    "yaml": [sys.executable, str(HERE / "yaml_safety.py"), "{repo}"],
    "pss": [sys.executable, str(HERE / "pss_restricted.py"), "{out}"],
    "checkov": ["bash", str(HERE / "checkov.sh"), "{out}"],
    "contract": [sys.executable, str(HERE / "contract.py"), "{repo}"],
    "shipped": ["bash", str(HERE / "shipped_files.sh"), "{out}"],
    "engine": [sys.executable, str(HERE / "engine_rules.py"), "{repo}"],
}
CASES: dict[str, tuple[Callable[[Fixture], None], str]] = {
    "k8s-unknown-field": (unknown_field, "k8s"),
    "k8s-wrong-type": (wrong_type, "k8s"),
    "k8s-yaml11-bool": (unquoted_yaml11, "k8s"),
    "kustomize-missing-resource": (missing_resource, "kustomize"),
    "yaml11-unquoted-on": (unquoted_yaml11, "yaml"),
    "pss-privileged": (privileged, "pss"),
    "pss-host-path": (host_path, "pss"),
    "pss-net-admin": (capability, "pss"),
    "pss-root": (root_user, "pss"),
    "pss-seccomp-unconfined": (unconfined, "pss"),
    "checkov-privileged": (privileged, "checkov"),
    "checkov-four-skips": (many_skips, "checkov"),
    "contract-no-header": (no_header, "contract"),
    "contract-replicas": (replicas_vs_state, "contract"),
    "contract-prunable-home": (no_prune_protection, "contract"),
    "contract-label-value": (bad_label, "contract"),
    "contract-tailnet-state-on-home": (sidecar_state_on_home, "contract"),
    "contract-token-in-devbox": (token_in_main_container, "contract"),
    "contract-writable-dataset": (writable_dataset, "contract"),
    "contract-spot-untolerated": (spot_untolerated, "contract"),
    "contract-over-quota": (over_quota, "contract"),
    "shipped-sshd-config": (bad_sshd_config, "shipped"),
    "shipped-truncated-key": (truncated_key, "shipped"),
    "engine-home-pvc-early-wave": (early_home_volume, "engine"),
    "engine-ordered-ready": (ordered_ready, "engine"),
    "engine-flux-ssh-no-secret": (flux_ssh_without_secret, "engine"),
    "engine-flux-pods-before-quota": (flux_pods_before_quota, "engine"),
}


def fixture(source: Path, into: Path, delivery: bool = False) -> Fixture:
    """A repo of the first running box alone; with `delivery`, also the out/_gitops/ files
    `build` would write for it (the shared ones, and this user's own Flux Kustomization)."""
    repo = Repo(source)
    for name in repo.users:
        state = repo.pick(name, "state") or "running"
        if state == "running" and any(repo.bundle(name).glob("statefulset-*.yaml")):
            break
    else:
        raise SystemExit(f"no running box with a StatefulSet in {source}")
    (into / "users").mkdir(parents=True)
    if (source / "devbox.toml").exists():
        shutil.copy(source / "devbox.toml", into / "devbox.toml")
    shutil.copy(source / "users" / f"{name}.toml", into / "users" / f"{name}.toml")
    shutil.copytree(repo.bundle(name), into / repo.bundle(name).relative_to(source))
    if delivery:
        for path in sorted((source / "out" / "_gitops").rglob("*.yaml")):
            origin = (load_one(path)["metadata"].get("annotations") or {}).get("devbox-gen.dev/source", "")
            if origin.startswith("users/") and origin != f"users/{name}.toml":
                continue  # another user's Flux Kustomization
            (into / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, into / path.relative_to(source))
    return into


def main() -> int:
    if sys.argv[1:] == ["--list"]:
        print("\n".join(CASES))
        return 0
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print(__doc__, file=sys.stderr)
        return 2
    source, case = Path(sys.argv[1]), sys.argv[2]
    breaker, check = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        fixture(source, repo, delivery=check == "engine")
        command = [a.format(repo=repo, out=repo / "out") for a in CHECKS[check]]
        # The unbroken fixture must pass, so that the refusal below is the breakage's doing.
        before = subprocess.run(command, capture_output=True, text=True, check=False)
        if before.returncode != 0:
            print(before.stdout[-2000:], before.stderr[-2000:])
            print(f"selftest {case}: the unbroken fixture already fails `{check}` (exit {before.returncode})")
            return 1
        breaker(repo)
        after = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in (after.stdout + after.stderr).splitlines() if line.strip()]
        if after.returncode == 1:
            first = next((line.strip() for line in lines if "FAIL" in line or "ERROR" in line), lines[-1] if lines else "")
            print(f"selftest {case}: `{check}` refused the broken bundle: {first[:200]}")
            return 0
        print("\n".join(lines[-20:]))
        print(f"selftest {case}: `{check}` exited {after.returncode} on the broken bundle, expected 1")
        return 1


if __name__ == "__main__":
    sys.exit(main())
