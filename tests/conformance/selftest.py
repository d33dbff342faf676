#!/usr/bin/env python3
"""Each conformance check must be able to fail: break one running box's bundle in one
way, run the check on it, and expect it to refuse (exit 1, not a usage or tool error).

    selftest.py SOURCE_REPO... CASE    run one case (exit 0 when the check refused it)
    selftest.py --list                 the cases

Each SOURCE_REPO is a built config repo (devbox.toml, users/, out/). The first box that
the case needs, in the first source that has one, is copied into a fresh repo of its own
with the namespace directories (out/_gitops/namespace/<cluster>/: the scripts ConfigMap
its pod mounts, the Namespace, the quota): a running box with a StatefulSet; for
the autostop cases, a box whose pod has the `idle` container, a wake CronJob, or an owner
Role (tests/data/autostop has all three); for the Flux artifact cases, a box whose Flux
Kustomization reads its own ExternalArtifact (tests/data/autostop again). A case listed in EXPECT must also name its rule
(or problem) in the refusal: proof that the new rule refused it, not an older one.
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
from bundles import Repo, containers, content_address, load_one, namespace_dir, pod_spec  # noqa: E402

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


def duplicate_key(repo: Fixture) -> None:
    """The same key twice in one mapping: YAML readers keep one of them, silently."""
    path = statefulset(repo)
    text = path.read_text()
    path.write_text(text.replace("\nkind: StatefulSet\n", "\nkind: StatefulSet\nkind: StatefulSet\n", 1))


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
        token = next(
            v["name"]
            for v in pod_spec(o)["volumes"]
            if any("serviceAccountToken" in s for s in (v.get("projected") or {}).get("sources", []))
        )
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


SCRIPTS_PREFIX = "devbox-scripts-"


def scripts_name(repo: Fixture) -> str:
    """The shared scripts ConfigMap the box's StatefulSet names (a projected source)."""
    volumes = pod_spec(load_one(statefulset(repo)))["volumes"]
    sources = [s for v in volumes for s in (v.get("projected") or {}).get("sources", [])]
    return next(s["configMap"]["name"] for s in sources if s.get("configMap", {}).get("name", "").startswith(SCRIPTS_PREFIX))


def scripts_file(repo: Fixture) -> Path:
    """The file of that ConfigMap, in the namespace directory of the box's cluster."""
    return namespace_dir(repo / "out", statefulset(repo).parent) / f"configmap-{scripts_name(repo)}.yaml"


def box_config_map(repo: Fixture) -> Path:
    """The box's own ConfigMap (authorized_keys, tailscale-extra-args, idle.json)."""
    return next(statefulset(repo).parent.glob("configmap-*.yaml"))


def bad_sshd_config(repo: Fixture) -> None:
    """The shared sshd_config with a value OpenSSH refuses."""
    rewrite(scripts_file(repo), lambda o: o["data"].update(sshd_config=o["data"]["sshd_config"] + "PermitRootLogin maybe\n"))


def truncated_key(repo: Fixture) -> None:
    rewrite(box_config_map(repo), lambda o: o["data"].update(authorized_keys=o["data"]["authorized_keys"][:60] + "\n"))


def rename_scripts(o: dict, name: str) -> None:
    for v in pod_spec(o)["volumes"]:
        for s in (v.get("projected") or {}).get("sources", []):
            if s.get("configMap", {}).get("name", "").startswith(SCRIPTS_PREFIX):
                s["configMap"]["name"] = name


def scripts_not_emitted(repo: Fixture) -> None:
    """The StatefulSet names a scripts ConfigMap that out/ does not have (a newer build's
    name in an older namespace directory, or the other way round)."""
    rewrite(statefulset(repo), lambda o: rename_scripts(o, SCRIPTS_PREFIX + "0000000000"))


def scripts_edited(repo: Fixture) -> None:
    """The scripts ConfigMap's data changed under the same name (edited by hand, or a
    template that patches `data` and not the name)."""
    rewrite(scripts_file(repo), lambda o: o["data"].update({"start.sh": o["data"]["start.sh"] + "# edited\n"}))


def second_scripts(repo: Fixture) -> None:
    """Another scripts ConfigMap, named by its own content, beside the one the box names: the
    namespace directory no longer says which version the boxes run."""
    path = scripts_file(repo)
    header = path.read_text().splitlines()[0] + "\n"
    obj = load_one(path)
    obj["data"]["start.sh"] += "# another version\n"
    obj["metadata"]["name"] = SCRIPTS_PREFIX + content_address(obj["data"])
    (path.parent / f"configmap-{obj['metadata']['name']}.yaml").write_text(header + yaml.safe_dump(obj, sort_keys=False))


def scripts_in_box_config_map(repo: Fixture) -> None:
    """start.sh back in the box's own ConfigMap (mutable, one copy per box)."""
    start = load_one(scripts_file(repo))["data"]["start.sh"]
    rewrite(box_config_map(repo), lambda o: o["data"].update({"start.sh": start}))


def scripts_mutable(repo: Fixture) -> None:
    rewrite(scripts_file(repo), lambda o: o.pop("immutable", None))


def scripts_prunable(repo: Fixture) -> None:
    """The scripts ConfigMap without Argo CD's Prune=false: a newer build's sync deletes it."""
    rewrite(scripts_file(repo), lambda o: o["metadata"]["annotations"].pop("argocd.argoproj.io/sync-options", None))


def scripts_in_bundle_too(repo: Fixture) -> None:
    """A copy of the shared scripts ConfigMap in the bundle as well: two Applications apply it."""
    src = scripts_file(repo)
    bundle = statefulset(repo).parent
    (bundle / src.name).write_text(src.read_text())
    rewrite(bundle / "kustomization.yaml", lambda o: o["resources"].append(src.name))


def argo_without_namespace_app(repo: Fixture) -> None:
    """No Argo CD Application syncs the namespace directory, where the scripts ConfigMap is."""
    found = list(repo.glob("out/_gitops/argocd/*/application-*namespace*.yaml"))
    if not found:
        raise SystemExit('no out/_gitops/argocd/*/application-*namespace*.yaml: the source repo has no gitops = ["argocd"]')
    for path in found:
        path.unlink()


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


def flux_ignore_drops_bundles(repo: Fixture) -> None:
    """The GitRepository's spec.ignore keeps out/_gitops/ but not the bundles: Flux would
    apply each box's directory empty, and prune the box."""
    # The GitRepository the user's own Kustomization reads (one a cluster).
    user = next((p for p in repo.glob("out/_gitops/flux/*/kustomization-devbox-*.yaml")), None)
    if user is None:
        raise SystemExit('no out/_gitops/flux/*/kustomization-devbox-*.yaml: the source repo has no gitops = ["flux"]')
    path = next(user.parent.glob("gitrepository-*.yaml"))

    def change(o: dict) -> None:
        kept = [line for line in o["spec"]["ignore"].splitlines() if "_gitops" in line]
        o["spec"]["ignore"] = "\n".join(["/*", *kept]) + "\n"

    rewrite(path, change)


def flux_pods_before_quota(repo: Fixture) -> None:
    """The user's Flux Kustomization no longer waits for the one that applies the quota."""
    path = next((p for p in repo.glob("out/_gitops/flux/*/kustomization-devbox-*.yaml")), None)
    if path is None:
        raise SystemExit('no out/_gitops/flux/*/kustomization-devbox-*.yaml: the source repo has no gitops = ["flux"]')
    rewrite(path, lambda o: o["spec"].pop("dependsOn", None))


def flux_scripts_unordered(repo: Fixture) -> None:
    """The user's Flux Kustomization depends on the delivery Kustomization instead of the
    namespace one that applies the scripts ConfigMap."""
    path = next((p for p in repo.glob("out/_gitops/flux/*/kustomization-devbox-*.yaml")), None)
    if path is None:
        raise SystemExit('no out/_gitops/flux/*/kustomization-devbox-*.yaml: the source repo has no gitops = ["flux"]')
    other = next(path.parent.glob("kustomization-devboxes-gitops*.yaml"))
    rewrite(path, lambda o: o["spec"].update(dependsOn=[{"name": load_one(other)["metadata"]["name"]}]))


def flux_artifact_kustomization(repo: Fixture) -> tuple[Path, dict]:
    """The user's Flux Kustomization, which must read an ExternalArtifact."""
    path = next((p for p in repo.glob("out/_gitops/flux/*/kustomization-devbox-*.yaml")), None)
    if path is None or load_one(path)["spec"]["sourceRef"]["kind"] != "ExternalArtifact":
        raise SystemExit("no Flux Kustomization reading an ExternalArtifact: the source repo needs `[flux] artifact_generator = true`")
    return path, load_one(path)


def flux_artifact_repo_path(repo: Fixture) -> None:
    """The box reads its own artifact but keeps the repository path: Flux looks for
    out/NAME/ inside the bundle's files."""
    path, ks = flux_artifact_kustomization(repo)
    bundle = next(p for p in repo.glob(f"out/**/{ks['metadata']['name'].removeprefix('devbox-')}") if p.is_dir())
    rewrite(path, lambda o: o["spec"].update(path=f"./{bundle.relative_to(repo).as_posix()}"))


def flux_artifact_twice(repo: Fixture) -> None:
    """A second generator makes the same artifact: the two take it from each other."""
    path, _ = flux_artifact_kustomization(repo)
    generator = next(path.parent.glob("artifactgenerator-*.yaml"))
    twin = generator.with_name("artifactgenerator-devboxes-artifacts-twin.yaml")
    rewrite_to(generator, twin, lambda o: o["metadata"].update(name="devboxes-artifacts-twin"))


def flux_artifact_commit_revision(repo: Fixture) -> None:
    """The artifact takes the commit as its revision: every merge reconciles every box."""
    path, _ = flux_artifact_kustomization(repo)
    generator = next(path.parent.glob("artifactgenerator-*.yaml"))
    rewrite(generator, lambda o: o["spec"]["artifacts"][0].update(revision="@" + o["spec"]["sources"][0]["alias"]))


def flux_artifact_no_files(repo: Fixture) -> None:
    """The artifact copies from a directory that is not there (a bundle renamed without its
    generator): the whole generator fails."""
    path, _ = flux_artifact_kustomization(repo)
    generator = next(path.parent.glob("artifactgenerator-*.yaml"))

    def change(o: dict) -> None:
        copy = o["spec"]["artifacts"][0]["copy"][0]
        copy["from"] = copy["from"].replace("/**", "-old/**")

    rewrite(generator, change)


def bundle_file(repo: Fixture, pattern: str) -> Path:
    return next(repo.glob(f"out/**/{pattern}"))


def sts_name(repo: Fixture) -> str:
    return load_one(statefulset(repo))["metadata"]["name"]


def set_state(repo: Fixture, state: str) -> None:
    user = next(repo.glob("users/*.toml"))
    lines = [line for line in user.read_text().splitlines() if not line.startswith("state =")]
    at = next(i for i, line in enumerate(lines) if line.startswith("email ="))
    user.write_text("\n".join(lines[: at + 1] + [f'state = "{state}"'] + lines[at + 1 :]) + "\n")


def autostop_replicas(repo: Fixture) -> None:
    """Git sets replicas again on a box that stops by itself: every sync would undo a stop."""
    rewrite(statefulset(repo), lambda o: o["spec"].update(replicas=1))


def stopped_with_idle(repo: Fixture) -> None:
    """The user file says stopped and Git says 0, but the idle machinery stays to start it."""
    set_state(repo, "stopped")
    rewrite(statefulset(repo), lambda o: o["spec"].update(replicas=0))


def stopped_replicas(repo: Fixture) -> None:
    """The user file says stopped; the StatefulSet still runs one pod."""
    set_state(repo, "stopped")
    rewrite(statefulset(repo), lambda o: o["spec"].update(replicas=1))


def claim_health_counted(repo: Fixture) -> None:
    """A stopped box's home claim without the annotation that leaves its health out."""
    set_state(repo, "stopped")
    rewrite(statefulset(repo), lambda o: o["spec"].update(replicas=0))
    claim = bundle_file(repo, "persistentvolumeclaim-*-home.yaml")
    rewrite(claim, lambda o: o["metadata"]["annotations"].pop("argocd.argoproj.io/ignore-healthcheck"))


def idle_role_secrets(repo: Fixture) -> None:
    """The idle Role also reads Secrets (the tailnet key among them)."""
    extra = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    rewrite(bundle_file(repo, "role-*-idle.yaml"), lambda o: o["rules"].append(extra))


def idle_role_any_box(repo: Fixture) -> None:
    """The idle Role's rule without resourceNames: every StatefulSet of the namespace."""
    rewrite(bundle_file(repo, "role-*-idle.yaml"), lambda o: o["rules"][0].pop("resourceNames"))


def owner_role_other_pod(repo: Fixture) -> None:
    def change(o: dict) -> None:
        for rule in o["rules"]:
            if rule["resources"][0].startswith("pods"):
                rule["resourceNames"] = ["someone-else-0"]

    rewrite(bundle_file(repo, "role-*-owner.yaml"), change)


def owner_user(repo: Fixture) -> None:
    """The owner's RoleBinding names the bare email where [owners] user_prefix asks for more."""
    path = bundle_file(repo, "rolebinding-*-owner.yaml")
    rewrite(path, lambda o: o["subjects"][0].update(name="someone@example.com"))


def cluster_role(repo: Fixture) -> None:
    """A ClusterRole and its binding in a bundle: the box's grants reach past its namespace."""
    sts = statefulset(repo)
    header = sts.read_text().splitlines()[0] + "\n"
    name = sts_name(repo)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{name}-idle"},
        "rules": [{"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": [name], "verbs": ["patch"]}],
    }
    (sts.parent / f"clusterrole-{name}-idle.yaml").write_text(header + yaml.safe_dump(role, sort_keys=False))
    rewrite(sts.parent / "kustomization.yaml", lambda o: o["resources"].append(f"clusterrole-{name}-idle.yaml"))


def appset_ignores_replicas(repo: Fixture) -> None:
    """The ApplicationSet's Applications ignore every StatefulSet's replicas."""
    path = next(repo.glob("out/_gitops/argocd/*/applicationset-*.yaml"), None)
    if path is None:
        raise SystemExit('no out/_gitops/argocd/*/applicationset-*.yaml: the source repo has no gitops = ["argocd"]')
    entry = {"group": "apps", "kind": "StatefulSet", "jsonPointers": ["/spec/replicas"]}
    rewrite(path, lambda o: o["spec"]["template"]["spec"].setdefault("ignoreDifferences", []).append(entry))


GENERATE_PATHS = "argocd.argoproj.io/manifest-generate-paths"


def appset(repo: Fixture) -> Path:
    path = next(repo.glob("out/_gitops/argocd/*/applicationset-*.yaml"), None)
    if path is None:
        raise SystemExit('no out/_gitops/argocd/*/applicationset-*.yaml: the source repo has no gitops = ["argocd"]')
    return path


def appset_renders_on_every_commit(repo: Fixture) -> None:
    """The ApplicationSet's Applications say nothing of the paths they render."""
    rewrite(appset(repo), lambda o: o["spec"]["template"]["metadata"].get("annotations", {}).pop(GENERATE_PATHS, None))


def appset_refresh_paths_elsewhere(repo: Fixture) -> None:
    """The Applications name the delivery directory, not their own bundle: a change to a
    bundle would keep its cached manifests."""
    annotations = lambda o: o["spec"]["template"]["metadata"].setdefault("annotations", {})  # noqa: E731
    rewrite(appset(repo), lambda o: annotations(o).update({GENERATE_PATHS: "/out/_gitops"}))


def wake_other_box(repo: Fixture) -> None:
    """The wake CronJob's request scales another box's StatefulSet."""
    name = sts_name(repo)

    def change(o: dict) -> None:
        for c in pod_spec(o)["containers"]:
            c["command"] = [part.replace(f"/statefulsets/{name}/", "/statefulsets/someone-else/") for part in c["command"]]

    rewrite(bundle_file(repo, "cronjob-*-wake.yaml"), change)


def wake_timezone(repo: Fixture) -> None:
    rewrite(bundle_file(repo, "cronjob-*-wake.yaml"), lambda o: o["spec"].update(timeZone="Etc/UTC"))


def idle_runs_devbox_image(repo: Fixture) -> None:
    """The idle container, which holds the token, runs the person's own image."""

    def change(o: dict) -> None:
        idle = next(c for _, c in containers(pod_spec(o)) if c["name"] == "idle")
        idle["image"] = main_container(o)["image"]

    rewrite(statefulset(repo), change)


def broken_idle_stop(repo: Fixture) -> None:
    rewrite(scripts_file(repo), lambda o: o["data"].update({"idle-stop.sh": o["data"]["idle-stop.sh"] + "if [ -e /x ]; then\n"}))


def idle_without_watcher(repo: Fixture) -> None:
    """idle.py gone from the scripts: a box with idle.json whose watcher never runs."""
    rewrite(scripts_file(repo), lambda o: o["data"].pop("idle.py"))


def idle_runs_missing_file(repo: Fixture) -> None:
    """The idle container runs a script its ConfigMap mounts do not give it."""

    def change(o: dict) -> None:
        idle = next(c for _, c in containers(pod_spec(o)) if c["name"] == "idle")
        idle["command"] = [part.replace("idle-stop.sh", "idle-stopper.sh") for part in idle["command"]]

    rewrite(statefulset(repo), change)


def wake_job(o: dict) -> dict:
    return pod_spec(o)["containers"][0]


def wake_privileged(repo: Fixture) -> None:
    rewrite(
        bundle_file(repo, "cronjob-*-wake.yaml"),
        lambda o: wake_job(o)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True),
    )


def wake_root(repo: Fixture) -> None:
    rewrite(bundle_file(repo, "cronjob-*-wake.yaml"), lambda o: pod_spec(o)["securityContext"].update(runAsNonRoot=False, runAsUser=0))


def wake_unknown_field(repo: Fixture) -> None:
    rewrite(bundle_file(repo, "cronjob-*-wake.yaml"), lambda o: pod_spec(o).update(bogusField="x"))


def literal_state_secret(repo: Fixture) -> None:
    """TS_KUBE_SECRET as a literal, as the template had it: kube-linter's env-var-secret."""

    def change(o: dict) -> None:
        sidecar = next(c for _, c in containers(pod_spec(o)) if c["name"] == "tailscale")
        var = next(v for v in sidecar["env"] if v["name"] == "TS_KUBE_SECRET")
        var.pop("valueFrom")
        var["value"] = f"{o['metadata']['name']}-tailnet"

    rewrite(statefulset(repo), change)


def dangling_service(repo: Fixture) -> None:
    rewrite(bundle_file(repo, "service-*.yaml"), lambda o: o["spec"]["selector"].update({"app.kubernetes.io/instance": "nobody"}))


def missing_service_account(repo: Fixture) -> None:
    rewrite(statefulset(repo), lambda o: pod_spec(o).update(serviceAccountName="nobody"))


def unexposed_probe_port(repo: Fixture) -> None:
    def change(o: dict) -> None:
        sidecar = next(c for _, c in containers(pod_spec(o)) if c["name"] == "tailscale")
        sidecar["readinessProbe"]["httpGet"]["port"] = "ts-healthz"

    rewrite(statefulset(repo), change)


def no_disk_request(repo: Fixture) -> None:
    """The box's container asks for no ephemeral storage: Autopilot's 1Gi, and eviction."""
    rewrite(statefulset(repo), lambda o: main_container(o)["resources"]["requests"].pop("ephemeral-storage"))


def disk_over_autopilot_cap(repo: Fixture) -> None:
    """9.5Gi for the box and Autopilot's 1Gi for the sidecar: over 10Gi, scaled down."""
    rewrite(statefulset(repo), lambda o: main_container(o)["resources"]["requests"].update({"ephemeral-storage": "9728Mi"}))


CHECKS = {
    "k8s": ["bash", str(HERE / "k8s_validate.sh"), "{out}", "1.33"],
    "kustomize": ["bash", str(HERE / "kustomize.sh"), "{out}"],
    "yaml": [sys.executable, str(HERE / "yaml_safety.py"), "{repo}"],
    "pss": [sys.executable, str(HERE / "pss_restricted.py"), "{out}"],
    "checkov": ["bash", str(HERE / "checkov.sh"), "{out}"],
    "contract": [sys.executable, str(HERE / "contract.py"), "{repo}"],
    "shipped": ["bash", str(HERE / "shipped_files.sh"), "{out}"],
    "engine": [sys.executable, str(HERE / "engine_rules.py"), "{repo}"],
    "yamllint": ["bash", str(HERE / "yamllint.sh"), "{out}"],
    "kube-linter": [sys.executable, str(HERE / "kube_linter.py"), "{out}"],
}
CASES: dict[str, tuple[Callable[[Fixture], None], str]] = {
    "k8s-unknown-field": (unknown_field, "k8s"),
    "k8s-wrong-type": (wrong_type, "k8s"),
    "k8s-yaml11-bool": (unquoted_yaml11, "k8s"),
    "kustomize-missing-resource": (missing_resource, "kustomize"),
    "yaml11-unquoted-on": (unquoted_yaml11, "yaml"),
    "yamllint-unquoted-on": (unquoted_yaml11, "yamllint"),
    "yamllint-duplicate-key": (duplicate_key, "yamllint"),
    "kube-linter-literal-secret-name": (literal_state_secret, "kube-linter"),
    "kube-linter-dangling-service": (dangling_service, "kube-linter"),
    "kube-linter-missing-account": (missing_service_account, "kube-linter"),
    "kube-linter-probe-port": (unexposed_probe_port, "kube-linter"),
    "kube-linter-privileged": (privileged, "kube-linter"),
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
    "engine-flux-ignore-drops-bundles": (flux_ignore_drops_bundles, "engine"),
    "engine-stopped-replicas": (stopped_replicas, "engine"),
    "engine-cluster-role": (cluster_role, "engine"),
    "engine-appset-ignores-replicas": (appset_ignores_replicas, "engine"),
    "engine-appset-renders-on-every-commit": (appset_renders_on_every_commit, "engine"),
    "engine-appset-refresh-paths-elsewhere": (appset_refresh_paths_elsewhere, "engine"),
    # Autostop (issue 15): a box that stops by itself, its wake CronJob, its owner's Role.
    "engine-flux-artifact-repo-path": (flux_artifact_repo_path, "engine"),
    "engine-flux-artifact-twice": (flux_artifact_twice, "engine"),
    "engine-flux-artifact-no-files": (flux_artifact_no_files, "engine"),
    "engine-flux-artifact-commit-revision": (flux_artifact_commit_revision, "engine"),
    "engine-autostop-replicas": (autostop_replicas, "engine"),
    "engine-stopped-keeps-idle": (stopped_with_idle, "engine"),
    "engine-idle-role-secrets": (idle_role_secrets, "engine"),
    "engine-idle-role-any-box": (idle_role_any_box, "engine"),
    "engine-owner-role-other-pod": (owner_role_other_pod, "engine"),
    "engine-wake-other-box": (wake_other_box, "engine"),
    "contract-autostop-replicas": (autostop_replicas, "contract"),
    "contract-idle-runs-devbox-image": (idle_runs_devbox_image, "contract"),
    "contract-wake-timezone": (wake_timezone, "contract"),
    "contract-owner-user": (owner_user, "contract"),
    "shipped-idle-stop-sh": (broken_idle_stop, "shipped"),
    "k8s-cronjob-unknown-field": (wake_unknown_field, "k8s"),
    "pss-cronjob-root": (wake_root, "pss"),
    "checkov-cronjob-privileged": (wake_privileged, "checkov"),
    # The shared scripts ConfigMap (out/_gitops/namespace/<cluster>/devbox-scripts-<hash10>).
    "engine-scripts-not-emitted": (scripts_not_emitted, "engine"),
    "engine-scripts-mutable": (scripts_mutable, "engine"),
    "engine-scripts-prunable": (scripts_prunable, "engine"),
    "engine-scripts-in-bundle-too": (scripts_in_bundle_too, "engine"),
    "engine-flux-scripts-unordered": (flux_scripts_unordered, "engine"),
    "engine-argo-no-namespace-app": (argo_without_namespace_app, "engine"),
    "engine-no-disk-request": (no_disk_request, "engine"),
    "engine-disk-over-autopilot-cap": (disk_over_autopilot_cap, "engine"),
    "engine-claim-health-counted": (claim_health_counted, "engine"),
    "contract-scripts-not-emitted": (scripts_not_emitted, "contract"),
    "contract-scripts-edited": (scripts_edited, "contract"),
    "contract-second-scripts": (second_scripts, "contract"),
    "contract-scripts-in-box-configmap": (scripts_in_box_config_map, "contract"),
    "shipped-idle-trio": (idle_without_watcher, "shipped"),
    "shipped-idle-command": (idle_runs_missing_file, "shipped"),
}
# What the refusal must name, for cases an older rule might refuse as well.
EXPECT = {
    "engine-flux-artifact-repo-path": "is not a directory of the repo",
    "engine-flux-ignore-drops-bundles": "spec.ignore leaves",
    "engine-flux-artifact-twice": "is made by 2 ArtifactGenerators",
    "engine-flux-artifact-no-files": "matches no file",
    "engine-flux-artifact-commit-revision": "every box reconciles at every merge",
    "yamllint-unquoted-on": "(truthy)",
    "yamllint-duplicate-key": "(key-duplicates)",
    "kube-linter-literal-secret-name": "TS_KUBE_SECRET with a literal value [env-var-secret]",
    "kube-linter-dangling-service": "[dangling-service]",
    "kube-linter-missing-account": "[non-existent-service-account]",
    "kube-linter-probe-port": "[readiness-port]",
    "kube-linter-privileged": "[privileged-container]",
    "engine-scripts-not-emitted": "[R9 pod-configmaps]",
    "engine-scripts-mutable": "[R9 pod-configmaps]",
    "engine-scripts-prunable": "[R9 pod-configmaps]",
    "engine-scripts-in-bundle-too": "[R9 pod-configmaps]",
    "engine-flux-scripts-unordered": "[R9 pod-configmaps]",
    "engine-argo-no-namespace-app": "[R9 pod-configmaps]",
    "engine-appset-renders-on-every-commit": "[R10 argo-refresh-paths]",
    "engine-no-disk-request": "[R11 autopilot-disk]",
    "engine-disk-over-autopilot-cap": "[R11 autopilot-disk]",
    "engine-claim-health-counted": "[R12 argo-claims-settle]",
    "engine-appset-refresh-paths-elsewhere": "[R10 argo-refresh-paths]",
    "contract-scripts-not-emitted": "not one projected volume of the box's own ConfigMap and the cluster's scripts ConfigMap",
    "contract-scripts-edited": "is not named by its content",
    "contract-second-scripts": "expected exactly one",
    "contract-scripts-in-box-configmap": "carries ['start.sh']",
    "shipped-idle-trio": "gets idle.json but not ['idle.py']",
    "shipped-idle-command": "which the pod does not get",
}
# What a case's box must have (else: a running box with a StatefulSet).
NEEDS = {
    "engine-autostop-replicas": "autostop",
    "engine-flux-artifact-repo-path": "artifact",
    "engine-flux-artifact-twice": "artifact",
    "engine-flux-artifact-no-files": "artifact",
    "engine-flux-artifact-commit-revision": "artifact",
    "engine-stopped-keeps-idle": "autostop",
    "engine-idle-role-secrets": "autostop",
    "engine-idle-role-any-box": "autostop",
    "engine-owner-role-other-pod": "owner",
    "engine-wake-other-box": "wake",
    "contract-autostop-replicas": "autostop",
    "contract-idle-runs-devbox-image": "autostop",
    "contract-wake-timezone": "wake",
    "contract-owner-user": "owner",
    "shipped-idle-stop-sh": "autostop",
    "k8s-cronjob-unknown-field": "wake",
    "pss-cronjob-root": "wake",
    "checkov-cronjob-privileged": "wake",
    "shipped-idle-trio": "autostop",
    "shipped-idle-command": "autostop",
}


def has(bundle: Path, needs: str) -> bool:
    """Whether a running box's bundle has what a case breaks."""
    sts = next(bundle.glob("statefulset-*.yaml"), None)
    if sts is None:
        return False
    if needs == "autostop":
        return any(c.get("name") == "idle" for _, c in containers(pod_spec(load_one(sts))))
    if needs == "wake":
        return any(bundle.glob("cronjob-*-wake.yaml"))
    if needs == "owner":
        return any(bundle.glob("rolebinding-*-owner.yaml"))
    if needs == "artifact":
        root = next(p for p in bundle.parents if (p / "users").is_dir())
        kustomization = next(root.glob(f"out/_gitops/flux/*/kustomization-devbox-{bundle.name}.yaml"), None)
        return kustomization is not None and load_one(kustomization)["spec"]["sourceRef"]["kind"] == "ExternalArtifact"
    return True


def pick(sources: list[Path], needs: str) -> tuple[Path, Repo, str]:
    """The first running box that has what the case needs, in the first source with one."""
    for source in sources:
        repo = Repo(source)
        for name in repo.users:
            if (repo.pick(name, "state") or "running") == "running" and has(repo.bundle(name), needs):
                return source, repo, name
    what = (
        "a StatefulSet"
        if needs == "running"
        else {
            "autostop": "an `idle` container",
            "wake": "a wake CronJob",
            "owner": "an owner Role",
            "artifact": "a Flux Kustomization reading its own artifact",
        }[needs]
    )
    raise SystemExit(f"no running box with {what} in {', '.join(map(str, sources))} (tests/data/autostop has one)")


def fixture(sources: list[Path], into: Path, delivery: bool = False, needs: str = "running") -> Fixture:
    """A repo of the first running box the case can break, alone; with `delivery`, also the
    out/_gitops/ files `build` would write for it (the shared ones, and this user's own Flux
    Kustomization)."""
    source, repo, name = pick(sources, needs)
    (into / "users").mkdir(parents=True)
    if (source / "devbox.toml").exists():
        shutil.copy(source / "devbox.toml", into / "devbox.toml")
    shutil.copy(source / "users" / f"{name}.toml", into / "users" / f"{name}.toml")
    shutil.copytree(repo.bundle(name), into / repo.bundle(name).relative_to(source))
    # The namespace directories: the scripts ConfigMap the pod mounts (written by every
    # build, gitops or not), and each cluster's Namespace and quota where devbox.toml has them.
    for path in sorted((source / "out" / "_gitops" / "namespace").rglob("*.yaml")):
        (into / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, into / path.relative_to(source))
    if delivery:
        for path in sorted((source / "out" / "_gitops").rglob("*.yaml")):
            obj = load_one(path)
            origin = (obj["metadata"].get("annotations") or {}).get("devbox-gen.dev/source", "")
            if origin.startswith("users/") and origin != f"users/{name}.toml":
                continue  # another user's Flux Kustomization
            (into / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            if obj.get("kind") == "ArtifactGenerator":
                # Only this user's artifact: the other bundles are not in the fixture.
                mine = [a for a in obj["spec"]["artifacts"] if a["name"] == f"devbox-{name}"]
                if mine:
                    rewrite_to(path, into / path.relative_to(source), lambda o, mine=mine: o["spec"].update(artifacts=mine))
                continue
            shutil.copy(path, into / path.relative_to(source))
    return into


def rewrite_to(path: Path, into: Path, change: Callable[[dict], None]) -> None:
    shutil.copy(path, into)
    rewrite(into, change)


def main() -> int:
    if sys.argv[1:] == ["--list"]:
        print("\n".join(CASES))
        return 0
    if len(sys.argv) < 3 or sys.argv[-1] not in CASES:
        print(__doc__, file=sys.stderr)
        return 2
    sources, case = [Path(a) for a in sys.argv[1:-1]], sys.argv[-1]
    breaker, check = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        fixture(sources, repo, delivery=check == "engine", needs=NEEDS.get(case, "running"))
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
            expect = EXPECT.get(case)
            if expect is not None and not any(expect in line for line in lines):
                print("\n".join(lines[-20:]))
                print(f"selftest {case}: `{check}` refused the broken bundle, but not with {expect!r}")
                return 1
            first = next((line.strip() for line in lines if expect and expect in line), None)
            first = first or next((line.strip() for line in lines if "FAIL" in line or "ERROR" in line), lines[-1] if lines else "")
            print(f"selftest {case}: `{check}` refused the broken bundle: {first[:200]}")
            return 0
        print("\n".join(lines[-20:]))
        print(f"selftest {case}: `{check}` exited {after.returncode} on the broken bundle, expected 1")
        return 1


if __name__ == "__main__":
    sys.exit(main())
