#!/usr/bin/env python3
"""What Argo CD, Flux and the StatefulSet controller are published to do, as rules every
bundle of out/ must meet so that the engine delivering it converges. Each rule names where
the behaviour is written down (a doc, a source file, an issue); so does each failure.

  R1 argo-wave-health  Argo CD applies wave N+1 only once every resource of wave N is
     Healthy, and a Pending PVC is Progressing: with a WaitForFirstConsumer StorageClass it
     stays Pending until a pod using it is scheduled. So nothing in an earlier sync wave (or
     phase) than a pod-creating workload of the same Application (bundle directory) may be
     of a kind whose health needs a pod or a cloud: only kinds Argo CD has no health check
     for (ConfigMap, Secret, ServiceAccount, Role, RoleBinding, NetworkPolicy, ...) and
     Services that are not type LoadBalancer. A non-integer sync-wave is refused as well
     (Argo CD silently reads it as helm.sh/hook-weight, else 0).
     Sources: argo-cd docs/user-guide/sync-waves.md ("How sync waves work?");
     gitops-engine pkg/sync/sync_context.go (a multi-step sync waits for running tasks to
     be Healthy; "some objects (e.g. secret) do not have health") and pkg/health/health.go
     (which kinds have a health check), pkg/health/health_pvc.go (Pending -> Progressing),
     pkg/health/health_service.go, pkg/sync/syncwaves/waves.go; argoproj/argo-cd#12840
     (the deadlock), #29201 (WaitForFirstConsumer PVCs shown Progressing, open).
  R2 argo-kind-order   Within one phase and wave Argo CD applies objects by kind, in
     gitops-engine's kindOrder (pkg/sync/sync_tasks.go, the list below). Every object of
     the bundle a workload's pods need (ServiceAccount, ConfigMap, Secret, PVC, and the
     Role/RoleBinding granting its ServiceAccount) must be applied before the workload: an
     earlier phase or wave, or the same wave and earlier in kindOrder. So must a
     ResourceQuota or LimitRange of the same Application: a pod admitted before it exists
     escapes the LimitRange's defaults (applied at admission only).
  R3 sts-parallel      Every StatefulSet of a box has `podManagementPolicy: Parallel`. With
     the default OrderedReady the controller does not get past a pod that is not Running
     and Ready, so a bad image or a missing tailscale key leaves the box stuck even after
     the revert. Sources: kubernetes/kubernetes#67250; the StatefulSet docs, "Forced
     rollback"; pkg/controller/statefulset/stateful_set_control.go (processReplica returns
     early on a not Running-and-Ready pod only when `monotonic`, i.e. not Parallel).
  R4 flux-source       Per out/_gitops/flux/<cluster>/: a GitRepository's spec.url is
     http(s):// or ssh:// (the CRD's pattern; scp-like `git@host:path` is not supported);
     an ssh:// URL has spec.secretRef.name (the Secret carries `identity` and
     `known_hosts`, both required for ssh). Every Kustomization's sourceRef names a
     GitRepository emitted there (default: the Kustomization's namespace); its spec.path
     is a directory of the repository holding manifests; every dependsOn names a
     Kustomization emitted there, without cycles; every healthChecks entry names an object
     (group, kind, name, namespace) of the manifests at that path.
     Sources: source-controller docs/spec/v1/gitrepositories.md ("URL", "Secret
     reference", "SSH authentication") and api/v1/gitrepository_types.go
     (`Pattern="^(http|https|ssh)://.*$"`); fluxcd/pkg git/options.go (ssh: identity and
     known_hosts required); kustomize-controller docs/spec/v1/kustomizations.md ("Source
     reference", "Path", "Dependencies", "Health checks") and internal/inventory
     (healthChecks: apiVersion defaults to apps/v1, no namespace = cluster-scoped).
     A Kustomization that applies pods in a namespace dependsOn (transitively) the one that
     applies that namespace's ResourceQuota and LimitRange, so they exist first
     (kustomizations.md, "Dependencies": applied only once the dependencies are Ready).
     A sourceRef of kind ExternalArtifact names an artifact that exactly one
     ArtifactGenerator emitted there makes (two would take it from each other: the
     controller force-applies it and deletes what leaves its own list); that generator's
     sources name GitRepositories emitted there by alias, it lists 1 to 1,000 artifacts
     with names that are Kubernetes object names, and each artifact is one copy of
     `@ALIAS/DIR/**` to `@artifact/`: the files of DIR at the artifact's root, where the
     Kustomization's spec.path is then resolved. DIR holds files: a pattern that matches
     none fails the whole generator, every other box's artifact with it. A GitRepository's
     spec.ignore keeps every file a Kustomization or an artifact reads from it (matched as
     fluxcd/pkg sourceignore and artifact/storage Archive do: a Kustomization whose file is
     ignored applies without it, and prunes what it made). No artifact takes
     its `revision` from the source (the commit): its revision stays its content's digest,
     so a merge reconciles only the boxes it changed (`setArtifactRevisions`). Sources: fluxcd/source-watcher
     api/v1beta1/artifactgenerator_types.go (MinItems/MaxItems, the name rule, the alias
     and copy patterns), internal/builder/builder.go (`calculateGlobDestination`: only
     `dir/**` strips the directory; other globs keep the whole path) and
     internal/controller/artifactgenerator_controller.go (`reconcileExternalArtifact`
     applies with Force, `findOrphanedReferences` deletes what left the list).
  R5 argo-appset       Per out/_gitops/argocd/<cluster>/: the ApplicationSets' git
     directory generators (Go path.Match, exclude rules win, hidden directories skipped)
     match every bundle directory exactly once and nothing else (no out/_gitops, no
     cluster directory); the template syncs `{{.path.path}}`; generated Application names
     are unique; syncPolicy.preserveResourcesOnDeletion is true; every Application's
     source path is a directory of the repository. Sources: argo-cd
     docs/operator-manual/applicationset/Generators-Git.md, applicationset/generators/git.go
     (path.Match), reposerver/repository/repository.go (GetGitDirectories),
     docs/operator-manual/applicationset/Application-Deletion.md.
  R6 autostop-replicas Whoever scales a box, Git does not set its replicas; whoever sets
     them, nothing scales the box. A StatefulSet whose pod has the `idle` container, or
     whose bundle has the NAME-idle Role, a Role granting patch/update on its
     statefulsets/scale, or a CronJob, leaves spec.replicas out. Argo CD applies the
     manifest as-is on every sync (a three-way merge against last-applied-configuration;
     ignoreDifferences changes the diff, not what is applied: argo-cd#4912, sync-options
     "Respect ignore differences configs") and, with selfHeal, syncs as soon as the live
     object differs; Flux's kustomize-controller server-side applies every interval, and
     a reconciliation overrides every field that diverges from Git (Flux FAQ, "What is a
     Kustomization reconciliation?"). Either would start an idle-stopped box again, or
     stop a woken one. Both leave alone a field the manifest does not set: that is how
     both tell users to leave replicas to an autoscaler (Argo CD best practices, "Leaving
     Room For Imperativeness"; the same FAQ entry). The price, once: the first apply
     without the field drops it from what the engine applied (last-applied-configuration,
     or the field manager's ownership), the API server defaults it, and a box that was
     at 0 starts with 1 (Kubernetes docs, "Migrating Deployments and StatefulSets to
     horizontal autoscaling": "a one-time degradation of Pod counts as the default value
     of this key is 1"; grafana/mimir#7367: under Flux, "Kubernetes notices the now
     missing item from the spec and therefore applies the default of 1 replica",
     kubernetes/kubernetes#67135). Later idle stops and wakes are not undone: the field
     is not the engine's any more. For a box Git ran at 1 this changes nothing; one
     that goes from `stopped` to running with [idle] in one commit starts, as it should.
     A stopped box (users/NAME.toml's `state`, else [defaults]) sets replicas: 0 and has
     none of that machinery: Git wins.
  R7 argo-ignore-replicas  No Argo CD Application or ApplicationSet template of
     out/_gitops/argocd/ ignores /spec/replicas (jsonPointers, jqPathExpressions, or
     managedFieldsManagers: whoever scaled last owns the field) of StatefulSets in
     general: an automated sync only runs when the Application is OutOfSync
     (docs/user-guide/auto_sync.md, "Automated Sync Semantics"), so a commit that only
     sets a box to `stopped` would show Synced and never be applied; with
     RespectIgnoreDifferences=true not even a later sync applies it. Autostopping boxes
     need no such entry (R6: their manifests have no replicas). An entry naming only
     StatefulSets that leave replicas out is harmless. Sources: argo-cd
     docs/user-guide/diffing.md, docs/user-guide/sync-options.md, argo-cd#4912.
  R8 box-rbac          What lets a box be scaled reaches that box alone. No ClusterRole or
     ClusterRoleBinding anywhere in out/. The NAME-idle Role has one rule: get/patch
     (update) on apps statefulsets/scale with resourceNames [the box's StatefulSet], bound
     to the box's ServiceAccount and its wake CronJob's ServiceAccount only. The NAME-owner Role names the box's StatefulSet
     (statefulsets get; statefulsets/scale get, patch, update) and pod NAME-0 (pods get,
     list, watch; pods/log get; pods/exec create, get), nothing else, and is bound to one
     User. No rule of a bundle uses `*`, and any rule on statefulsets names the bundle's
     own: an empty resourceNames means every object (Kubernetes RBAC docs, "Referring to
     resources"). The idle container's and the wake CronJob's ServiceAccount is granted
     patch on that scale subresource by a Role of the bundle, and the CronJob's request
     names the box's namespace and StatefulSet: without both the box never stops, or
     never wakes.
  R9 pod-configmaps    Every ConfigMap a bundle's pod template mounts or references
     (configMap volumes, the configMap sources of projected volumes, env
     valueFrom.configMapKeyRef, envFrom.configMapRef) is emitted, in the pod's namespace,
     either in that bundle or in the namespace directory out/_gitops/namespace/<cluster>/ of
     the bundle's cluster, and in only one of them (two Applications or Kustomizations
     applying one object fight over it, and the bundle's prune deletes it with the bundle).
     Exempt: a reference marked `optional: true`, and kube-root-ca.crt, which
     kube-controller-manager's root-ca-cert-publisher writes into every namespace. The
     kubelet does not start a pod whose ConfigMap is missing: it retries the mount
     (FailedMount) and the pod stays in ContainerCreating until the ConfigMap exists
     (kubernetes/kubernetes#28772; a missing one in env: CreateContainerConfigError), and
     neither Argo CD nor Flux creates an object that is not in Git. A ConfigMap of the
     namespace directory that a bundle's pod references is shared by every box and outlives
     the revision that named it: a pod not restarted yet, or one the StatefulSet controller
     recreates from an older revision (a rollback), keeps mounting it after Git moves on to a
     new one. So it is `immutable: true` (its content can never change under its name; the
     kubelet also stops watching it) and is never pruned: Argo CD `Prune=false` in
     argocd.argoproj.io/sync-options, Flux `kustomize.toolkit.fluxcd.io/prune: disabled`.
     Where delivery files exist, the engine applies it: an Application of
     out/_gitops/argocd/<cluster>/ syncs its directory, a Kustomization of
     out/_gitops/flux/<cluster>/ applies it, and each Kustomization applying such a pod
     dependsOn (transitively) that one, so that the new ConfigMap exists before a
     StatefulSet names it (kustomizations.md, "Dependencies"). Argo CD has no order between
     Applications: there the kubelet's retry is what converges.
     Sources: kubernetes/kubernetes#28772; the Kubernetes docs, "Configure a Pod to Use a
     ConfigMap" (optional ConfigMaps) and "ConfigMaps" (immutable ConfigMaps); kubernetes
     pkg/controller/certificates/rootcacertpublisher/publisher.go; argo-cd
     docs/user-guide/sync-options.md ("No Prune Resources"); kustomize-controller
     docs/spec/v1/kustomizations.md ("Prune", "Dependencies").
  R10 argo-refresh-paths  Every Argo CD Application of out/_gitops/argocd/<cluster>/, and
     its ApplicationSets' template, carries argocd.argoproj.io/manifest-generate-paths, and
     the paths it names cover every file the Application renders. The repo server caches
     manifests by commit: without the annotation every merge renders every Application
     again (10,000 bundles for a one-line change); with it, a commit that changes nothing
     under those paths carries the cached manifests over (Argo CD 2.11 and later, with or
     without webhooks). So a path that misses a file the Application renders (its
     kustomization.yaml and what that lists) leaves a change to that file unapplied.
     Paths as Argo CD reads them (GetSourceRefreshPaths; GetAppRefreshPaths before 3.3): split at `;`, an absolute path is
     relative to the repository root, a relative one joined to the source path and
     cleaned; a changed file counts when it is a refresh path, lies beneath one, or
     matches one as a filepath.Match pattern (AppFilesHaveChanged). Sources: argo-cd
     docs/operator-manual/high_availability.md ("Manifest Paths Annotation"),
     util/app/path/path.go.
  R11 autopilot-disk   A box's pod can write more than GKE Autopilot's default to /tmp, and
     Autopilot admits it as written. Autopilot gives a container that requests no
     ephemeral storage 1 GiB, and makes its limit equal to its request; a pod whose
     containers' writable layers, logs and emptyDir volumes outgrow the sum of its
     containers' limits is evicted ("Pod ephemeral local storage usage exceeds the total
     limit of containers 1Gi"), a `pip install torch` (about 3 GB of wheels unpacked in
     /tmp) among them. So the first container of every StatefulSet requests more than
     1 GiB, every container's request is at least Autopilot's minimum of 10 MiB, and the
     pod's total, counting Autopilot's 1 GiB for a container that requests none, is at
     most Autopilot's 10 GiB: above it Autopilot scales the requests down, which rewrites
     the workload the engine applied and shows as drift. No container limits ephemeral
     storage below its request (the API server refuses that). Sources: GKE docs,
     "Resource requests in Autopilot" (default, minimum, maximum; "the cumulative value
     of storage requests across all containers"); elastic/cloud-on-k8s#7751 (the
     eviction); GoogleCloudPlatform/gcs-fuse-csi-driver#21 (the cap and the scaling
     down); kelos-dev/kelos#296 (limits mutated down to the request).
  R12 argo-claims-settle  In a directory Argo CD syncs as one Application, every
     PersistentVolumeClaim either is mounted by a pod of a workload there that runs
     (spec.replicas unset or above 0) or carries `argocd.argoproj.io/ignore-healthcheck:
     "true"`. A claim of a WaitForFirstConsumer StorageClass (GKE's standard-rwo, most CSI
     classes) stays Pending until a pod that mounts it is scheduled, Argo CD counts a Pending
     claim as Progressing, and an Application is as healthy as its least healthy resource:
     a box created stopped, or archived before it ever ran, would stay Progressing for good,
     an alert that never clears. Sources: gitops-engine pkg/health/health_pvc.go
     (ClaimPending -> Progressing); argo-cd controller/health.go (setApplicationHealth skips a
     resource with the annotation) and docs/operator-manual/health.md; argo-cd#29201.

Home volumes never pruned or deleted (Argo CD Prune=false,Delete=false; Flux
kustomize.toolkit.fluxcd.io/prune: disabled) is contract.py's (rule 1 of docs/design.md).

Paths in spec.path and generator paths are paths of the Git repository: devbox.toml's
[repo].path, when set, is where this config repo sits in it. The Git directory generator is
checked against the directories under out/ (what the generated patterns can reach).

    engine_rules.py REPO       checks REPO/out; exit 1 on any violation
"""

from __future__ import annotations

import argparse
import fnmatch
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Python puts this script's directory on sys.path.
from bundles import KUBE_ROOT_CA, KUSTOMIZATION, Repo, config_map_refs, dig, load_all, namespace_dir, pod_spec, quantity

GITOPS_DIR = "_gitops"
ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
FLUX_PRUNE = "kustomize.toolkit.fluxcd.io/prune"
WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
HELM_WEIGHT = "helm.sh/hook-weight"
GENERATE_PATHS = "argocd.argoproj.io/manifest-generate-paths"

ARGO_WAVES = "https://argo-cd.readthedocs.io/en/stable/user-guide/sync-waves/"
ARGO_ENGINE = "https://github.com/argoproj/argo-cd/blob/master/gitops-engine"  # was argoproj/gitops-engine
ARGO_ISSUES = "https://github.com/argoproj/argo-cd/issues"
CITE = {
    "R1": (
        f"{ARGO_WAVES}; {ARGO_ENGINE}/pkg/sync/sync_context.go; {ARGO_ENGINE}/pkg/health/health.go; "
        f"{ARGO_ENGINE}/pkg/health/health_pvc.go; {ARGO_ISSUES}/12840; {ARGO_ISSUES}/29201"
    ),
    "R2": f"{ARGO_ENGINE}/pkg/sync/sync_tasks.go (kindOrder); {ARGO_WAVES}",
    "R3": (
        "https://github.com/kubernetes/kubernetes/issues/67250; "
        "https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#forced-rollback; "
        "kubernetes pkg/controller/statefulset/stateful_set_control.go"
    ),
    "R4": (
        "https://fluxcd.io/flux/components/source/gitrepositories/#url (source-controller docs/spec/v1/gitrepositories.md); "
        "https://fluxcd.io/flux/components/kustomize/kustomizations/ (kustomize-controller docs/spec/v1/kustomizations.md)"
    ),
    "R5": (
        "https://argo-cd.readthedocs.io/en/stable/operator-manual/applicationset/Generators-Git/; "
        "https://argo-cd.readthedocs.io/en/stable/operator-manual/applicationset/Application-Deletion/"
    ),
    "R6": (
        "https://argo-cd.readthedocs.io/en/stable/user-guide/best_practices/#leaving-room-for-imperativeness; "
        "https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/#respect-ignore-differences-configs; "
        f"{ARGO_ISSUES}/4912; https://fluxcd.io/flux/faq/#what-is-a-kustomization-reconciliation; "
        "https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/"
        "#migrating-deployments-and-statefulsets-to-horizontal-autoscaling; https://github.com/grafana/mimir/issues/7367; "
        "https://github.com/kubernetes/kubernetes/issues/67135"
    ),
    "R7": (
        "https://argo-cd.readthedocs.io/en/stable/user-guide/auto_sync/#automated-sync-semantics; "
        "https://argo-cd.readthedocs.io/en/stable/user-guide/diffing/; "
        f"https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/#respect-ignore-differences-configs; {ARGO_ISSUES}/4912"
    ),
    "R8": "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources",
    "R10": (
        "https://argo-cd.readthedocs.io/en/stable/operator-manual/high_availability/#manifest-paths-annotation; "
        "https://github.com/argoproj/argo-cd/blob/master/util/app/path/path.go (GetSourceRefreshPaths, AppFilesHaveChanged)"
    ),
    "R11": (
        "https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests; "
        "https://github.com/elastic/cloud-on-k8s/issues/7751; "
        "https://github.com/GoogleCloudPlatform/gcs-fuse-csi-driver/issues/21; "
        "https://github.com/kelos-dev/kelos/pull/296"
    ),
    "R9": (
        "https://github.com/kubernetes/kubernetes/issues/28772; "
        "https://kubernetes.io/docs/tasks/configure-pod-container/configure-pod-configmap/#optional-configmaps; "
        "https://kubernetes.io/docs/concepts/configuration/configmap/#configmap-immutable; "
        "https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/#no-prune-resources; "
        "https://fluxcd.io/flux/components/kustomize/kustomizations/#prune; "
        "https://fluxcd.io/flux/components/kustomize/kustomizations/#dependencies"
    ),
}
RULE_NAMES = {
    "R1": "argo-wave-health",
    "R2": "argo-kind-order",
    "R3": "sts-parallel",
    "R4": "flux-source",
    "R5": "argo-appset",
    "R6": "autostop-replicas",
    "R7": "argo-ignore-replicas",
    "R8": "box-rbac",
    "R9": "pod-configmaps",
    "R10": "argo-refresh-paths",
    "R11": "autopilot-disk",
    "R12": "argo-claims-settle",
    "load": "load",
}

# The container that stops an idle box, and the verbs each owner permission may take on
# which subresource (the template's ownerRules): anything beyond is more than the box
# needs. list and watch on the pod are `kubectl wait pod/NAME-0` after a wake: restricted
# by resourceNames, RBAC authorizes them only with a metadata.name field selector of that
# name (RBAC docs, "Referring to resources").
IDLE_CONTAINER = "idle"
SCALE_VERBS = {"patch", "update"}
OWNER_RULES = {
    ("apps", "statefulsets"): {"get"},
    ("apps", "statefulsets/scale"): {"get", "patch", "update"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get"},
    ("", "pods/exec"): {"create", "get"},
}

# gitops-engine pkg/sync/sync_tasks.go, kindOrder (from Helm's kind_sorter.go): a kind's
# position is i - len(kinds), so every listed kind sorts before an unlisted one (0).
KIND_ORDER_LIST = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
    "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition",
    "ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
    "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
]  # fmt: skip
KIND_ORDER = {kind: i - len(KIND_ORDER_LIST) for i, kind in enumerate(KIND_ORDER_LIST)}

# gitops-engine pkg/sync/sync_tasks.go, syncPhaseOrder.
PHASE_ORDER = {"PreSync": -1, "Sync": 0, "PostSync": 1, "SyncFail": 2}

# R11: GKE Autopilot's ephemeral storage per container (default, minimum) and per pod (maximum).
GIB = 1024**3
AUTOPILOT_DISK_DEFAULT = GIB
AUTOPILOT_DISK_MIN = 10 * 1024**2
AUTOPILOT_DISK_MAX = 10 * GIB


# R1's pod-creating workloads (bundles.POD_TEMPLATE_PATHS but PodTemplate).
POD_CREATING = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"}
# Kinds with no health check in gitops-engine (pkg/health/health.go GetHealthCheckFunc) nor a
# built-in one in argo-cd's resource_customizations/: no health is success, at once
# (pkg/sync/sync_context.go). Application: its health check was removed in Argo CD 1.8
# (docs/operator-manual/health.md). Everything else (PVC, LoadBalancer Service, Ingress,
# HPA, PodDisruptionBudget, CRD, custom resources, workloads) may wait on something.
NO_HEALTH = {
    "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
    "ClusterRoleBinding", "NetworkPolicy", "Namespace", "ResourceQuota", "LimitRange",
    "PersistentVolume", "StorageClass", "PriorityClass", "Application", "ApplicationSet",
    "AppProject",
}  # fmt: skip

INTEGER = re.compile(r"^[+-]?[0-9]+$")  # Go's strconv.Atoi, which syncwaves.Wave uses
GITREPO_URL = re.compile(r"^(http|https|ssh)://.*$")  # source-controller api/v1 GitRepositorySpec.URL
SCP_LIKE = re.compile(r"^[^/:@]+@[^/:]+:")
# fluxcd/source-watcher api/v1beta1/artifactgenerator_types.go: SourceReference.Alias's
# pattern, OutputArtifacts' MaxItems, and the CEL rule on artifact names without pathPattern.
GENERATOR_ALIAS = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
GENERATOR_MAX_ARTIFACTS = 1000
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SourceIgnore:
    """A GitRepository's spec.ignore, matched as source-controller matches it when it packs
    the artifact: fluxcd/pkg sourceignore (ReadPatterns: `#` lines and blank lines skipped)
    and sourceignore/gitignore (go-git's matcher: the last pattern that matches a path
    decides; a pattern with a `/` is anchored and matches a path or any of its parents;
    `!` re-includes). artifact/storage Archive walks every directory and asks for each file
    by its whole path, so a re-included file inside an excluded directory is packed.
    Go's filepath.Match is read as fnmatch, which agrees for `*`, `?` and plain names."""

    def __init__(self, text: str) -> None:
        self.patterns = [self.parse(line) for line in text.splitlines() if not line.startswith("#") and line.strip()]

    @staticmethod
    def parse(line: str) -> tuple[bool, bool, bool, list[str]]:
        include = line.startswith("!")
        if include:
            line = line[1:]
        if not line.endswith("\\ "):
            line = line.rstrip(" ")
        dir_only = line.endswith("/")
        if dir_only:
            line = line[:-1]
        return include, dir_only, "/" in line, line.split("/")

    @staticmethod
    def glob_match(pattern: list[str], path: list[str], is_dir: bool, dir_only: bool) -> bool:
        matched, traverse = False, False
        for i, part in enumerate(pattern):
            if part == "":
                traverse = False
                continue
            if part == "**":
                if i == len(pattern) - 1:
                    break
                traverse = True
                continue
            if "**" in part or not path:
                return False
            if traverse:
                traverse = False
                while path:
                    head, path = path[0], path[1:]
                    if fnmatch.fnmatchcase(head, part):
                        matched = True
                        break
                    if not path:
                        matched = False
            else:
                if not fnmatch.fnmatchcase(path[0], part):
                    return False
                matched, path = True, path[1:]
        return not (matched and dir_only and not is_dir and not path) and matched

    @classmethod
    def hits(cls, parsed: tuple[bool, bool, bool, list[str]], path: list[str], is_dir: bool) -> bool:
        _, dir_only, is_glob, pattern = parsed
        if is_glob:
            return cls.glob_match(pattern, path, is_dir, dir_only)
        return any(
            fnmatch.fnmatchcase(name, pattern[0]) and not (dir_only and not is_dir and i == len(path) - 1) for i, name in enumerate(path)
        )

    def ignored(self, git_path: str, is_dir: bool = False) -> bool:
        path = git_path.split("/")
        for parsed in reversed(self.patterns):
            if self.hits(parsed, path, is_dir):
                return not parsed[0]
        return False


# fluxcd/pkg sourceignore/gitignore/pattern_test.go, the cases without a domain: (pattern,
# path, is a directory, Include / Exclude / NoMatch). Checked before any rule runs.
MATCHER_CASES = [
    ("!vul?ano", "value/vulkano/tail", False, "include"),
    ("value", "value/tail", False, "exclude"),
    ("value", "head/value/tail", False, "exclude"),
    ("value/", "value/tail", False, "exclude"),
    ("value/", "head/value", True, "exclude"),
    ("value/", "head/value", False, None),
    ("value", "head/val/tail", False, None),
    ("val", "head/value/tail", False, None),
    ("v*o", "value/vulkano/tail", False, "exclude"),
    ("vul?ano", "value/vulkano/tail", False, "exclude"),
    ("/value/vul?ano", "value/vulkano/tail", False, "exclude"),
    ("value/vul?ano", "value/vulkano/tail", False, "exclude"),
    ("value/vulkano", "value/volcano", False, None),
    ("value/vul?ano", "value", False, None),
    ("/value/volcano", "value/value/volcano", False, None),
    ("**/*lue/vol?ano", "value/volcano/tail", False, "exclude"),
    ("**/*lue/vol?ano", "head/value/volcano/tail", False, "exclude"),
    ("**/*lue/vol?ano", "head/value/Volcano/tail", False, None),
    ("**/*lue/vol?ano/", "head/value/volcano/tail", False, "exclude"),
    ("**/*lue/vol?ano/", "head/value/volcano", True, "exclude"),
    ("**/*lue/vol?ano/", "head/value/volcano", False, None),
    ("/*lue/vol?ano/**", "value/volcano/tail/moretail", False, "exclude"),
]


def check_matcher() -> None:
    for pattern, path, is_dir, expected in MATCHER_CASES:
        parsed = SourceIgnore.parse(pattern)
        got = ("include" if parsed[0] else "exclude") if SourceIgnore.hits(parsed, path.split("/"), is_dir) else None
        assert got == expected, f"spec.ignore matcher: {pattern!r} on {path!r}: {got}, go-git says {expected}"


@dataclass
class Obj:
    path: Path
    doc: dict

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "")

    @property
    def name(self) -> str:
        return str(dig(self.doc, "metadata", "name") or "")

    @property
    def namespace(self) -> str:
        return str(dig(self.doc, "metadata", "namespace") or "")

    @property
    def group(self) -> str:
        api = str(self.doc.get("apiVersion") or "")
        return api.rpartition("/")[0] if "/" in api else ""

    @property
    def annotations(self) -> dict:
        return dig(self.doc, "metadata", "annotations") or {}

    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    def sources(self) -> list[dict]:
        """An Application's sources that name a path (`source`, or each of `sources`)."""
        spec = self.doc.get("spec") or {}
        return [s for s in [spec.get("source"), *(spec.get("sources") or [])] if isinstance(s, dict) and "path" in s]


def rules_of(role: Obj) -> list[dict]:
    return [r for r in role.doc.get("rules") or [] if isinstance(r, dict)]


def grants(rule: dict, group: str, resource: str, verbs: set[str], name: str) -> bool:
    """Whether an RBAC rule allows one of `verbs` on `resource` named `name` (RBAC's
    matching: `*` anywhere, an empty resourceNames is every name)."""
    return (
        bool({group, "*"} & set(rule.get("apiGroups") or []))
        and bool({resource, "*"} & set(rule.get("resources") or []))
        and bool((verbs | {"*"}) & set(rule.get("verbs") or []))
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
    )


def sets_replicas(sts: Obj) -> bool:
    return isinstance(sts.doc.get("spec"), dict) and "replicas" in sts.doc["spec"]


def container_names(obj: Obj) -> set[str]:
    spec = pod_spec(obj.doc) or {}
    return {str(c.get("name")) for group in ("initContainers", "containers") for c in spec.get(group) or [] if isinstance(c, dict)}


@dataclass
class Checker:
    root: Path
    prefix: str  # where the config repo sits in the Git repository ("" or "deploy/devboxes/")
    repo: Repo | None = None  # users/*.toml, for what a bundle's user file says
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # R9: workload file -> {file of a namespace directory's ConfigMap its pods use: its name}
    shared_refs: dict[Path, dict[Path, str]] = field(default_factory=dict)
    shared_checked: set[Path] = field(default_factory=set)

    def fail(self, rule: str, path: Path, message: str) -> None:
        rel = path.relative_to(self.root) if path.is_absolute() and path.is_relative_to(self.root) else path
        source = f" [{CITE[rule]}]" if rule in CITE else ""
        self.problems.append((rule, str(rel), f"{message}{source}"))

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # --- loading ----------------------------------------------------------------------

    def load(self, path: Path) -> list[Obj]:
        try:
            docs = load_all(path)
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            self.fail("load", path, f"not readable YAML: {e}")
            return []
        return [Obj(path, d) for d in docs if isinstance(d, dict)]

    def objects_of(self, directory: Path) -> list[Obj]:
        """The objects of one directory (not its subdirectories), kustomization.yaml aside."""
        objs: list[Obj] = []
        for path in sorted(directory.glob("*.yaml")):
            if path.name != KUSTOMIZATION:
                objs += self.load(path)
        return objs

    def manifests_at(self, directory: Path) -> tuple[list[Obj], str]:
        """What Flux applies from a directory: kustomization.yaml's resources (and its
        `namespace`), or, without one, every YAML file beneath (Flux generates one)."""
        kustomization = directory / KUSTOMIZATION
        if not kustomization.is_file():
            objs: list[Obj] = []
            for path in sorted(directory.rglob("*.yaml")):
                objs += self.load(path)
            return objs, ""
        spec = next(iter(self.load(kustomization)), None)
        doc = spec.doc if spec else {}
        objs = []
        for entry in doc.get("resources") or []:
            target = directory / str(entry)
            if target.is_dir():
                objs += self.manifests_at(target)[0]
            elif target.is_file():
                objs += self.load(target)
        return objs, str(doc.get("namespace") or "")

    def repo_dir(self, git_path: str) -> Path | None:
        """A path of the Git repository as a directory of this config repo (None: outside it)."""
        path = posixpath.normpath(git_path.strip() or ".")
        path = "" if path == "." else path
        prefix = self.prefix.rstrip("/")
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return None
            path = path[len(prefix) :].lstrip("/")
        if path.startswith(".."):
            return None
        return self.root / path if path else self.root

    def git_path(self, directory: Path) -> str:
        return self.prefix + directory.relative_to(self.root).as_posix()

    # --- R1, R2: sync waves and kind order of one Argo CD Application -----------------

    def order_key(self, obj: Obj) -> tuple[int, int] | None:
        """(phase, wave) as gitops-engine sorts them; None for a Skip hook (never applied)."""
        notes = obj.annotations
        phase = 0
        if HOOK in notes:
            hooks = [h.strip() for h in str(notes[HOOK]).split(",") if h.strip()]
            if "Skip" in hooks:
                return None
            phase = min((PHASE_ORDER[h] for h in hooks if h in PHASE_ORDER), default=0)
        wave = 0
        if WAVE in notes:
            text = str(notes[WAVE])
            if INTEGER.match(text):
                wave = int(text)
            else:
                self.fail(
                    "R1",
                    obj.path,
                    f"{obj.label()}: {WAVE} {text!r} is not an integer; Argo CD ignores it and falls back to "
                    f"{HELM_WEIGHT} or 0 ({ARGO_ENGINE}/pkg/sync/syncwaves/waves.go)",
                )
                weight = str(notes.get(HELM_WEIGHT, "0"))
                wave = int(weight) if INTEGER.match(weight) else 0
        elif HELM_WEIGHT in notes and INTEGER.match(str(notes[HELM_WEIGHT])):
            wave = int(str(notes[HELM_WEIGHT]))
        return phase, wave

    @staticmethod
    def healthy_without_pods(obj: Obj) -> bool:
        if obj.kind == "Service" and obj.group == "":
            return dig(obj.doc, "spec", "type") != "LoadBalancer"  # health_service.go
        return obj.kind in NO_HEALTH

    @staticmethod
    def needs(obj: Obj, spec: dict, objs: list[Obj]) -> set[tuple[str, str]]:
        """(kind, name) of the objects of the same Application that the workload's pods use."""
        wanted: set[tuple[str, str]] = set()
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if sa:
            wanted.add(("ServiceAccount", sa))
        for v in spec.get("volumes") or []:
            if dig(v, "configMap", "name"):
                wanted.add(("ConfigMap", v["configMap"]["name"]))
            if dig(v, "secret", "secretName"):
                wanted.add(("Secret", v["secret"]["secretName"]))
            if dig(v, "persistentVolumeClaim", "claimName"):
                wanted.add(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
            for source in dig(v, "projected", "sources") or []:
                if dig(source, "configMap", "name"):
                    wanted.add(("ConfigMap", source["configMap"]["name"]))
                if dig(source, "secret", "name"):
                    wanted.add(("Secret", source["secret"]["name"]))
        for s in spec.get("imagePullSecrets") or []:
            if s.get("name"):
                wanted.add(("Secret", s["name"]))
        for group in ("initContainers", "containers", "ephemeralContainers"):
            for c in spec.get(group) or []:
                for e in c.get("env") or []:
                    if dig(e, "valueFrom", "configMapKeyRef", "name"):
                        wanted.add(("ConfigMap", e["valueFrom"]["configMapKeyRef"]["name"]))
                    if dig(e, "valueFrom", "secretKeyRef", "name"):
                        wanted.add(("Secret", e["valueFrom"]["secretKeyRef"]["name"]))
                for e in c.get("envFrom") or []:
                    if dig(e, "configMapRef", "name"):
                        wanted.add(("ConfigMap", e["configMapRef"]["name"]))
                    if dig(e, "secretRef", "name"):
                        wanted.add(("Secret", e["secretRef"]["name"]))
        # The RBAC granting the pods' ServiceAccount: its RoleBindings and their Roles.
        if sa:
            for binding in objs:
                if binding.kind not in ("RoleBinding", "ClusterRoleBinding"):
                    continue
                subjects = binding.doc.get("subjects") or []
                if any(s.get("kind") == "ServiceAccount" and s.get("name") == sa for s in subjects):
                    wanted.add((binding.kind, binding.name))
                    ref = binding.doc.get("roleRef") or {}
                    if ref.get("kind") and ref.get("name"):
                        wanted.add((ref["kind"], ref["name"]))
        return wanted

    def application(self, directory: Path) -> None:
        """R1 and R2 on one directory Argo CD syncs as one Application."""
        keyed = [(o, k) for o in self.objects_of(directory) if (k := self.order_key(o)) is not None]
        if not keyed:
            return
        self.count("directories synced as Argo CD Applications")
        workloads = [(o, k) for o, k in keyed if o.kind in POD_CREATING]
        # R1: nothing before a workload may wait on a pod (or on a cloud load balancer).
        for obj, key in keyed:
            later = [(w, wk) for w, wk in workloads if w is not obj and wk > key]
            if not later or self.healthy_without_pods(obj):
                continue
            claim = ("PersistentVolumeClaim", obj.name)
            mounting = [(w, wk) for w, wk in later if obj.kind == claim[0] and claim in self.needs(w, pod_spec(w.doc) or {}, [])]
            if mounting:
                message = (
                    f"{obj.label()} is in {at(key)}, before {', '.join(f'{w.label()} ({at(wk)})' for w, wk in mounting)} "
                    "that mounts it: under a WaitForFirstConsumer StorageClass the PVC stays Pending (Argo CD: "
                    "Progressing) until that pod is scheduled, and Argo CD does not apply the later wave until the PVC "
                    "is Healthy (deadlock)"
                )
            else:
                message = (
                    f"{obj.label()} is in {at(key)}, before {', '.join(f'{w.label()} ({at(wk)})' for w, wk in later)}, "
                    f"but Argo CD's health of a {obj.kind} can wait on a pod (or a cloud load balancer), and Argo CD "
                    "does not apply the later wave until it is Healthy; only kinds without a health check (ConfigMap, "
                    "Secret, ServiceAccount, Role, RoleBinding, NetworkPolicy, ...) and non-LoadBalancer Services "
                    "may come before a workload"
                )
            self.fail("R1", obj.path, message)
        # R2: the namespace's limits come before the pods they limit.
        for obj, key in keyed:
            if obj.kind not in ("ResourceQuota", "LimitRange"):
                continue
            for w, wk in workloads:
                if key > wk or (key == wk and KIND_ORDER.get(obj.kind, 0) >= KIND_ORDER.get(w.kind, 0)):
                    self.fail(
                        "R2",
                        obj.path,
                        f"{obj.label()} ({at(key)}) is applied after {w.label()} ({at(wk)}): its pods are admitted "
                        f"before the quota and the LimitRange's defaults exist",
                    )
        # R2: what the pods need is applied before the workload.
        by_ref = {(o.kind, o.name): (o, k) for o, k in keyed}
        for w, wk in workloads:
            spec = pod_spec(w.doc)
            if spec is None:
                continue
            for ref in sorted(self.needs(w, spec, [o for o, _ in keyed])):
                if ref not in by_ref:
                    continue  # not in the bundle (a Secret made by hand, a ClusterRole)
                dep, dk = by_ref[ref]
                dep_order, w_order = KIND_ORDER.get(dep.kind, 0), KIND_ORDER.get(w.kind, 0)
                if dk > wk:
                    self.fail("R2", dep.path, f"{dep.label()} ({at(dk)}) is used by {w.label()}'s pods but applied after it ({at(wk)})")
                elif dk == wk and dep_order >= w_order:
                    self.fail(
                        "R2",
                        dep.path,
                        f"{dep.label()} is used by {w.label()}'s pods, in the same {at(wk)}, but kindOrder applies "
                        f"{dep.kind} ({dep_order}) after {w.kind} ({w_order})",
                    )

    # --- R3 ------------------------------------------------------------------------------

    def statefulsets(self, directory: Path) -> None:
        for obj in self.objects_of(directory):
            if obj.kind != "StatefulSet":
                continue
            self.count("StatefulSets")
            policy = dig(obj.doc, "spec", "podManagementPolicy") or "OrderedReady (the default)"
            if policy != "Parallel":
                self.fail(
                    "R3",
                    obj.path,
                    f"{obj.label()}: podManagementPolicy is {policy}, not Parallel: a pod that never becomes Running and "
                    f"Ready (a bad image, a missing tailscale key) is not replaced after the revert",
                )

    # --- R12 -----------------------------------------------------------------------------

    def claims_settle(self, directory: Path) -> None:
        objs = self.objects_of(directory)
        mounted: set[str] = set()
        for workload in objs:
            if workload.kind not in POD_CREATING or (sets_replicas(workload) and not dig(workload.doc, "spec", "replicas")):
                continue
            mounted |= {name for kind, name in self.needs(workload, pod_spec(workload.doc) or {}, []) if kind == "PersistentVolumeClaim"}
        for claim in objs:
            if claim.kind != "PersistentVolumeClaim" or claim.group != "":
                continue
            self.count("claims whose health settles")
            if claim.name in mounted or claim.annotations.get("argocd.argoproj.io/ignore-healthcheck") == "true":
                continue
            self.fail(
                "R12",
                claim.path,
                f"{claim.label()} is mounted by no running pod of this Application and lacks "
                'argocd.argoproj.io/ignore-healthcheck: "true": under a WaitForFirstConsumer StorageClass it stays '
                "Pending, which Argo CD counts as Progressing, and so does the Application, for good",
            )

    # --- R11 -----------------------------------------------------------------------------

    def disk(self, directory: Path) -> None:
        """R11 on one bundle's StatefulSets."""
        for obj in self.objects_of(directory):
            if obj.kind != "StatefulSet":
                continue
            containers = dig(obj.doc, "spec", "template", "spec", "containers") or []
            total = 0
            for i, container in enumerate(containers):
                name = container.get("name", f"containers[{i}]")
                request = dig(container, "resources", "requests", "ephemeral-storage")
                limit = dig(container, "resources", "limits", "ephemeral-storage")
                try:
                    asked = quantity(request) if request is not None else None
                    limited = quantity(limit) if limit is not None else None
                except ValueError as error:
                    self.fail("R11", obj.path, f"{obj.label()}: container {name}: ephemeral-storage {error}")
                    continue
                if asked is not None and asked < AUTOPILOT_DISK_MIN:
                    self.fail(
                        "R11", obj.path, f"{obj.label()}: container {name} requests {request} of ephemeral storage, below Autopilot's 10Mi"
                    )
                if limited is not None and asked is not None and limited < asked:
                    self.fail(
                        "R11", obj.path, f"{obj.label()}: container {name} limits ephemeral storage to {limit}, below its request {request}"
                    )
                if i == 0 and (asked is None or asked <= AUTOPILOT_DISK_DEFAULT):
                    self.fail(
                        "R11",
                        obj.path,
                        f"{obj.label()}: container {name} requests {request or 'no'} ephemeral storage: on Autopilot that is "
                        f"1Gi, request and limit, and the pod is evicted once /tmp and its logs hold more",
                    )
                total += AUTOPILOT_DISK_DEFAULT if asked is None else asked
            if total > AUTOPILOT_DISK_MAX:
                self.fail(
                    "R11",
                    obj.path,
                    f"{obj.label()}: its containers request {float(total / GIB):.2f}Gi of ephemeral storage with Autopilot's 1Gi for "
                    f"each that requests none, over Autopilot's 10Gi a pod: Autopilot would scale the requests down",
                )
            self.count("pods' disk requests")

    # --- R6, R8: who sets a box's replicas, who may scale it ------------------------------

    def scalers(self, sts: Obj, objs: list[Obj]) -> list[str]:
        """What in the bundle changes the StatefulSet's replicas behind Git's back."""
        found = []
        if IDLE_CONTAINER in container_names(sts):
            found.append(f"its pod's `{IDLE_CONTAINER}` container")
        for role in objs:
            if role.kind != "Role":
                continue
            if role.name == f"{sts.name}-idle":
                found.append(f"{role.label()}")
            elif any(grants(r, "apps", "statefulsets/scale", SCALE_VERBS, sts.name) for r in rules_of(role)):
                found.append(f"{role.label()} (patch on statefulsets/scale)")
        found += [o.label() for o in objs if o.kind == "CronJob"]
        return found

    def autostop(self, directory: Path) -> None:
        """R6 on one bundle."""
        objs = self.objects_of(directory)
        user = directory.name
        state = None
        if self.repo is not None and user in self.repo.users:
            state = self.repo.pick(user, "state") or "running"
        for sts in (o for o in objs if o.kind == "StatefulSet"):
            scalers = self.scalers(sts, objs)
            if scalers:
                self.count("autostopping StatefulSets")
            if scalers and sets_replicas(sts):
                self.fail(
                    "R6",
                    sts.path,
                    f"{sts.label()} sets spec.replicas: {sts.doc['spec']['replicas']!r}, yet {', '.join(scalers)} scale(s) it: "
                    "Argo CD (every sync; selfHeal) and Flux (every interval) apply the manifest's replicas again and undo "
                    "an idle stop or a wake; leave the field out",
                )
            if state == "stopped":
                self.count("stopped StatefulSets")
                if dig(sts.doc, "spec", "replicas") != 0:
                    self.fail(
                        "R6",
                        sts.path,
                        f"{sts.label()}: users/{user}.toml says stopped, but spec.replicas is "
                        f"{dig(sts.doc, 'spec', 'replicas')!r}, not 0: only Git's 0 keeps a stopped box stopped",
                    )
                if scalers:
                    self.fail(
                        "R6",
                        sts.path,
                        f"{sts.label()}: users/{user}.toml says stopped, yet {', '.join(scalers)} can start it: a stopped box "
                        "has no idle or wake machinery (Git wins)",
                    )

    def rbac(self, directory: Path) -> None:
        """R8 on one bundle."""
        objs = self.objects_of(directory)
        sts = next((o for o in objs if o.kind == "StatefulSet"), None)
        own = sts.name if sts else directory.name
        pod = f"{own}-0"
        roles = {o.name: o for o in objs if o.kind == "Role"}
        for role in roles.values():
            self.count("Roles")
            for rule in rules_of(role):
                wild = [f for f in ("apiGroups", "resources", "verbs", "resourceNames") if "*" in (rule.get(f) or [])]
                if wild:
                    self.fail("R8", role.path, f"{role.label()}: a rule with `*` in {', '.join(wild)}: more than one box needs")
                for resource in rule.get("resources") or []:
                    if resource.split("/")[0] == "statefulsets" and rule.get("resourceNames") != [own]:
                        self.fail(
                            "R8",
                            role.path,
                            f"{role.label()}: {resource} with resourceNames {rule.get('resourceNames')!r}, not [{own}]: "
                            "it reaches other boxes (no resourceNames is every StatefulSet of the namespace)",
                        )
        idle = roles.get(f"{own}-idle")
        if idle is not None:
            rules = rules_of(idle)
            want = {"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": [own]}
            ok = len(rules) == 1 and all(rules[0].get(k) == v for k, v in want.items())
            verbs = set(rules[0].get("verbs") or []) if rules else set()
            if not ok or not verbs <= {"get", "patch", "update"} or "patch" not in verbs:
                self.fail(
                    "R8",
                    idle.path,
                    f"{idle.label()}: rules {rules!r}; expected exactly one: apps statefulsets/scale, resourceNames [{own}], "
                    "verbs get/patch: the idle container holds a token next to the person's box, and scaling this box is "
                    "all it does",
                )
        owner = roles.get(f"{own}-owner")
        if owner is not None:
            for rule in rules_of(owner):
                for group in rule.get("apiGroups") or []:
                    for resource in rule.get("resources") or []:
                        allowed = OWNER_RULES.get((group, resource))
                        names = [own] if resource.startswith("statefulsets") else [pod]
                        verbs = set(rule.get("verbs") or [])
                        if allowed is None or not verbs <= allowed or rule.get("resourceNames") != names:
                            self.fail(
                                "R8",
                                owner.path,
                                f"{owner.label()}: {group or 'core'} {resource} {sorted(verbs)} on {rule.get('resourceNames')!r}: "
                                f"the owner's Role names {own} (statefulsets, statefulsets/scale) and {pod} (pods, pods/log, "
                                "pods/exec) only",
                            )
        for binding in (o for o in objs if o.kind == "RoleBinding"):
            subjects = binding.doc.get("subjects") or []
            ref = binding.doc.get("roleRef") or {}
            if ref.get("kind") != "Role" or ref.get("name") not in roles:
                self.fail("R8", binding.path, f"{binding.label()}: roleRef {ref.get('kind')}/{ref.get('name')} is not a Role of the bundle")
            if ref.get("name") == f"{own}-idle":
                # The box's ServiceAccount (the idle container's), and the wake CronJob's own
                # one when the bundle has that CronJob: nobody else.
                sa = str((pod_spec(sts.doc) or {}).get("serviceAccountName") or "") if sts else ""
                wakers = [str((pod_spec(o.doc) or {}).get("serviceAccountName") or "") for o in objs if o.kind == "CronJob"]
                expected = [("ServiceAccount", name) for name in [sa, *wakers]]
                if [(s.get("kind"), s.get("name")) for s in subjects] != expected:
                    self.fail(
                        "R8",
                        binding.path,
                        f"{binding.label()}: subjects {subjects!r}; the idle Role belongs to the box's ServiceAccount ({sa}) "
                        f"and its wake CronJob's ({', '.join(wakers) or 'none'}) alone",
                    )
            if ref.get("name") == f"{own}-owner" and [s.get("kind") for s in subjects] != ["User"]:
                self.fail("R8", binding.path, f"{binding.label()}: subjects {subjects!r}; the owner's Role is bound to one User")
        if sts is not None:
            self.scale_granted(sts, objs)

    def scale_granted(self, sts: Obj, objs: list[Obj]) -> None:
        """The requests the idle container and the wake CronJob make are authorized, and the
        CronJob's is for this box."""
        namespace = sts.namespace
        scalers = [sts] if IDLE_CONTAINER in container_names(sts) else []
        scalers += [o for o in objs if o.kind == "CronJob"]
        for workload in scalers:
            sa = str((pod_spec(workload.doc) or {}).get("serviceAccountName") or "default")
            granted = False
            for binding in (o for o in objs if o.kind == "RoleBinding"):
                if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa for s in binding.doc.get("subjects") or []):
                    continue
                role = next((o for o in objs if o.kind == "Role" and o.name == dig(binding.doc, "roleRef", "name")), None)
                if role and any(grants(r, "apps", "statefulsets/scale", {"patch"}, sts.name) for r in rules_of(role)):
                    granted = True
            if not granted:
                self.fail(
                    "R8",
                    workload.path,
                    f"{workload.label()}: its ServiceAccount {sa} is granted no patch on statefulsets/scale {sts.name} by a "
                    "Role of the bundle: its scale request is refused (403)",
                )
            if workload.kind == "CronJob":
                spec = pod_spec(workload.doc) or {}
                text = " ".join(" ".join(map(str, (c.get("command") or []) + (c.get("args") or []))) for c in spec.get("containers") or [])
                target = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{sts.name}/scale"
                if target not in text:
                    self.fail(
                        "R8", workload.path, f"{workload.label()}: its request does not name {target}: it wakes some other box, or none"
                    )

    def no_cluster_roles(self, out: Path) -> None:
        """R8: a ClusterRole or ClusterRoleBinding anywhere in out/ reaches past the namespace."""
        for path in sorted(out.rglob("*.yaml")):
            if path.name == KUSTOMIZATION:
                continue
            for obj in self.load(path):
                if obj.kind in ("ClusterRole", "ClusterRoleBinding"):
                    self.fail(
                        "R8", path, f"{obj.label()}: cluster-wide RBAC in a generated bundle; a box's grants are Roles of its namespace"
                    )

    # --- R9: the ConfigMaps a pod uses exist, and the shared ones outlive it ---------------

    def pod_config_maps(self, bundle: Path, out: Path) -> None:
        """R9 on one bundle: every ConfigMap its pod templates use is emitted in the bundle or
        in its cluster's namespace directory; a shared one is immutable and never pruned."""
        objs = self.objects_of(bundle)
        shared_dir = namespace_dir(out, bundle)
        own = {o.name: o for o in objs if o.kind == "ConfigMap"}
        shared = {o.name: o for o in self.objects_of(shared_dir) if o.kind == "ConfigMap"} if shared_dir.is_dir() else {}
        where_shared = f"{shared_dir.relative_to(self.root)}/"
        for workload in objs:
            spec = pod_spec(workload.doc)
            if spec is None or workload.kind == "PodTemplate":
                continue
            for name, optional, where in config_map_refs(spec):
                self.count("ConfigMap references of pod templates")
                if name == KUBE_ROOT_CA or optional:
                    continue
                found = [cm for cm in (own.get(name), shared.get(name)) if cm is not None]
                if not found:
                    self.fail(
                        "R9",
                        workload.path,
                        f"{workload.label()}: {where} uses ConfigMap {name}, which is neither in {bundle.relative_to(self.root)}/ "
                        f"nor in {where_shared}: no engine creates it, and the pod stays in ContainerCreating (FailedMount) "
                        "until someone does; mark it optional if the pod can start without it",
                    )
                    continue
                if len(found) > 1 and found[1].path not in self.shared_checked:
                    self.shared_checked.add(found[1].path)
                    self.fail(
                        "R9",
                        found[1].path,
                        f"{found[1].label()} is emitted in {where_shared} and in {bundle.relative_to(self.root)}/: two Applications "
                        "(Kustomizations) apply one object and fight over it, and the bundle's prune deletes it when the bundle goes",
                    )
                cm = found[0]
                if workload.namespace and cm.namespace and cm.namespace != workload.namespace:
                    self.fail(
                        "R9",
                        workload.path,
                        f"{workload.label()}: {where} uses ConfigMap {name} of namespace {cm.namespace}, but the pod runs in "
                        f"{workload.namespace}: a pod only sees ConfigMaps of its own namespace",
                    )
                if cm is own.get(name):
                    continue
                self.shared_refs.setdefault(workload.path.resolve(), {})[cm.path.resolve()] = name
                if cm.path in self.shared_checked:
                    continue
                self.shared_checked.add(cm.path)
                self.count("shared ConfigMaps")
                if cm.doc.get("immutable") is not True:
                    self.fail(
                        "R9",
                        cm.path,
                        f"{cm.label()} is shared by the boxes of {where_shared} but not `immutable: true`: a pod that has not "
                        "restarted sees its content change under the name it started with, while others run the old one; "
                        "a new content needs a new name",
                    )
                sync_options = [s.strip() for s in str(cm.annotations.get(ARGO_SYNC_OPTIONS, "")).split(",")]
                if "Prune=false" not in sync_options or str(cm.annotations.get(FLUX_PRUNE)) != "disabled":
                    self.fail(
                        "R9",
                        cm.path,
                        f"{cm.label()} can be pruned (annotations {ARGO_SYNC_OPTIONS}: {cm.annotations.get(ARGO_SYNC_OPTIONS)!r}, "
                        f"{FLUX_PRUNE}: {cm.annotations.get(FLUX_PRUNE)!r}; needs Prune=false and disabled): once Git names a newer "
                        "one, Argo CD or Flux deletes it under the pods still mounting it, and a pod recreated from them hangs "
                        "in ContainerCreating",
                    )

    def argo_shared(self, directories: list[Path]) -> None:
        """R9, Argo CD: an Application of the cluster's delivery directory syncs the namespace
        directory whose ConfigMaps the pods use."""
        needed: dict[Path, set[str]] = {}
        for refs in self.shared_refs.values():
            for path, name in refs.items():
                needed.setdefault(path.parent, set()).add(name)
        for directory in directories:
            cluster_dir = self.root / "out" / GITOPS_DIR / "namespace" / directory.name
            if cluster_dir.resolve() not in needed:
                continue
            synced = False
            for app in (o for o in self.objects_of(directory) if o.kind == "Application"):
                for source in app.sources():
                    target = self.repo_dir(str(source["path"]))
                    if target is None:
                        continue
                    target = target.resolve()
                    recurse = dig(source, "directory", "recurse") is True
                    if target == cluster_dir.resolve() or (recurse and target in cluster_dir.resolve().parents):
                        synced = True
            if not synced:
                names = ", ".join(sorted(needed[cluster_dir.resolve()]))
                self.fail(
                    "R9",
                    directory,
                    f"no Application of {directory.relative_to(self.root)}/ syncs {cluster_dir.relative_to(self.root)}/, where the "
                    f"ConfigMaps the pods use live ({names}): Argo CD never creates them",
                )

    # --- R10: Argo CD manifest-generate-paths --------------------------------------------------

    def rendered_files(self, directory: Path) -> list[Path]:
        """The files Argo CD renders an Application of `directory` from: kustomization.yaml and
        what it lists (recursively), or every YAML file beneath without one."""
        kustomization = directory / KUSTOMIZATION
        if not kustomization.is_file():
            return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))
        files = [kustomization]
        spec = next(iter(self.load(kustomization)), None)
        for entry in (spec.doc if spec else {}).get("resources") or []:
            target = directory / str(entry)
            files += self.rendered_files(target) if target.is_dir() else [target]
        return files

    @staticmethod
    def refresh_paths(annotation: str, source_path: str) -> list[str]:
        """GetSourceRefreshPaths (GetAppRefreshPaths before 3.3): `;`-separated; absolute from the repository root, relative
        joined to the source path (filepath.Clean(filepath.Join(...)))."""
        paths = []
        for item in annotation.split(";"):
            if not item:
                continue
            paths.append(item[1:] if item.startswith("/") else posixpath.normpath(posixpath.join(source_path, item)))
        return paths

    @staticmethod
    def refreshes(paths: list[str], changed: str) -> bool:
        """AppFilesHaveChanged, for one changed file: equal to a refresh path, beneath it
        (EnforceToCurrentRoot), or matched by it as a pattern (filepath.Match)."""
        for item in paths:
            item = posixpath.normpath("/" + item.lstrip("/"))
            file = "/" + changed.lstrip("/")
            if file == item or file.startswith(item.rstrip("/") + "/") or go_path_match(item, file):
                return True
        return False

    def covers(self, app: Obj, annotation: object, source_path: str, directory: Path) -> None:
        if not isinstance(annotation, str) or not annotation.strip(";"):
            self.fail(
                "R10",
                app.path,
                f"{app.label()}: no {GENERATE_PATHS} for {source_path}: every commit renders this Application again, whatever it changes",
            )
            return
        paths = self.refresh_paths(annotation, source_path)
        for file in self.rendered_files(directory):
            git_file = self.git_path(file) if file.is_relative_to(self.root) else str(file)
            if not self.refreshes(paths, git_file):
                self.fail(
                    "R10",
                    app.path,
                    f"{app.label()}: {GENERATE_PATHS}: {annotation!r} ({', '.join(paths)}) does not cover {git_file}, which it "
                    "renders: a commit that changes only that file keeps the cached manifests",
                )
                return

    def argo_refresh_paths(self, directories: list[Path], bundles: list[Path]) -> None:
        for directory in directories:
            for obj in self.objects_of(directory):
                if obj.kind == "Application":
                    for source in obj.sources():
                        target = self.repo_dir(str(source["path"]))
                        if target is not None and target.is_dir():
                            self.count("Application refresh paths")
                            self.covers(obj, obj.annotations.get(GENERATE_PATHS), str(source["path"]), target)
                elif obj.kind == "ApplicationSet":
                    template = dig(obj.doc, "spec", "template") or {}
                    annotation = dig(template, "metadata", "annotations", GENERATE_PATHS)
                    if not isinstance(annotation, str) or not annotation.strip(";"):
                        self.covers(obj, annotation, "the Applications of its template", directory)
                        continue
                    # R5 holds the template to `{{.path.path}}`: each bundle is a source path.
                    for bundle in bundles:
                        self.count("Application refresh paths")
                        self.covers(obj, annotation, self.git_path(bundle), bundle)

    # --- R7: Argo CD ignoreDifferences on replicas ------------------------------------------

    @staticmethod
    def ignores_replicas(entry: dict) -> str | None:
        """How an ignoreDifferences entry hides spec.replicas of StatefulSets, or None."""
        if str(entry.get("group") or "") not in ("apps", "*") or str(entry.get("kind") or "") not in ("StatefulSet", "*"):
            return None
        for pointer in entry.get("jsonPointers") or []:
            # RFC 6901: "" is the whole object; "/spec" holds /spec/replicas.
            if [s for s in str(pointer).split("/")[1:] if s] in ([], ["spec"], ["spec", "replicas"]):
                return f"jsonPointers {pointer!r}"
        for expr in entry.get("jqPathExpressions") or []:
            if re.search(r"\.spec(\.replicas\b|\s*$|\[)", str(expr)) or str(expr).strip() == ".":
                return f"jqPathExpressions {expr!r}"
        if entry.get("managedFieldsManagers"):
            return f"managedFieldsManagers {entry['managedFieldsManagers']!r} (whoever scaled a box last owns its replicas)"
        return None

    def argo_ignore(self, directories: list[Path], bundles: list[Path]) -> None:
        omitting = set()  # StatefulSets Git leaves the replicas of
        for d in bundles:
            omitting |= {o.name for o in self.objects_of(d) if o.kind == "StatefulSet" and not sets_replicas(o)}
        for directory in directories:
            for obj in self.objects_of(directory):
                if obj.kind == "ApplicationSet":
                    spec = dig(obj.doc, "spec", "template", "spec") or {}
                elif obj.kind == "Application":
                    spec = obj.doc.get("spec") or {}
                else:
                    continue
                respect = any(
                    str(o).replace(" ", "") == "RespectIgnoreDifferences=true" for o in dig(spec, "syncPolicy", "syncOptions") or []
                )
                for entry in spec.get("ignoreDifferences") or []:
                    how = self.ignores_replicas(entry) if isinstance(entry, dict) else None
                    name = str(entry.get("name") or "") if isinstance(entry, dict) else ""
                    if how is None or (name and "{{" not in name and name in omitting):
                        continue
                    also = " With RespectIgnoreDifferences=true no sync applies it either." if respect else ""
                    self.fail(
                        "R7",
                        obj.path,
                        f"{obj.label()}: ignoreDifferences on StatefulSet {name or '(every one)'} by {how} hides spec.replicas from the "
                        f"diff: a commit that only sets a box to `stopped` leaves the Application Synced, and an automated sync "
                        f"never runs.{also}",
                    )

    # --- R4: Flux ------------------------------------------------------------------------

    def flux(self, directory: Path) -> None:
        objs = self.objects_of(directory)
        self.count("Flux directories")
        repos = {(o.namespace, o.name): o for o in objs if o.kind == "GitRepository"}
        kustomizations = {(o.namespace, o.name): o for o in objs if o.kind == "Kustomization"}
        limiting: dict[str, set[tuple]] = {}  # namespace -> Kustomizations applying its limits
        pods_in: dict[tuple, set[str]] = {}  # Kustomization -> namespaces it creates pods in
        applied: dict[tuple, set[Path]] = {}  # Kustomization -> the files it applies
        for repo in repos.values():
            url = str(dig(repo.doc, "spec", "url") or "")
            if not GITREPO_URL.match(url):
                hint = " (scp-like syntax is not supported; write ssh://user@host/path)" if SCP_LIKE.match(url) else ""
                self.fail("R4", repo.path, f"{repo.label()}: spec.url {url!r} is not http://, https:// or ssh://{hint}")
            elif url.startswith("ssh://") and not dig(repo.doc, "spec", "secretRef", "name"):
                self.fail(
                    "R4",
                    repo.path,
                    f"{repo.label()}: spec.url {url!r} is ssh:// but spec.secretRef.name is not set: ssh needs a Secret "
                    f"with `identity` and `known_hosts` (fluxcd/pkg git/options.go)",
                )
        artifacts = self.artifact_generators(directory, objs, repos)
        for _, ks in sorted(kustomizations.items()):
            spec = ks.doc.get("spec") or {}
            self.count("Flux Kustomizations")
            ref = spec.get("sourceRef") or {}
            ref_key = (ref.get("namespace") or ks.namespace, ref.get("name"))
            root = "."  # where spec.path starts: the repository, or the artifact's own files
            if ref.get("kind") == "ExternalArtifact":
                made_by = artifacts.get(ref_key, [])
                if len(made_by) != 1:
                    self.fail(
                        "R4",
                        ks.path,
                        f"{ks.label()}: sourceRef ExternalArtifact/{ref_key[0]}/{ref_key[1]} is made by "
                        f"{len(made_by)} ArtifactGenerators of {directory.relative_to(self.root)}/, not one",
                    )
                    continue
                root = made_by[0]
            elif ref.get("kind") != "GitRepository" or ref_key not in repos:
                self.fail(
                    "R4",
                    ks.path,
                    f"{ks.label()}: sourceRef {ref.get('kind')}/{ref_key[0]}/{ref_key[1]} is not a GitRepository of "
                    f"{directory.relative_to(self.root)}/",
                )
            for dep in spec.get("dependsOn") or []:
                dep_key = (dep.get("namespace") or ks.namespace, dep.get("name"))
                if dep_key not in kustomizations:
                    self.fail(
                        "R4",
                        ks.path,
                        f"{ks.label()}: dependsOn {dep_key[0]}/{dep_key[1]} is not a Kustomization of {directory.relative_to(self.root)}/",
                    )
            git_path = str(spec.get("path") or "")
            target = self.repo_dir(posixpath.join(root, git_path))
            if target is None or not target.is_dir():
                where = "outside the config repo" if target is None else "not a directory of the repo"
                if root != ".":
                    where += f" (its source is an artifact of {root}/, so the path starts there)"
                self.fail("R4", ks.path, f"{ks.label()}: spec.path {git_path!r} is {where}")
                continue
            manifests, kustomize_ns = self.manifests_at(target)
            applied[(ks.namespace, ks.name)] = {m.path.resolve() for m in manifests}
            if root == "." and ref_key in repos:
                self.packed(repos[ref_key], [target / KUSTOMIZATION] + [m.path for m in manifests], ks.label())
            if not manifests:
                self.fail("R4", ks.path, f"{ks.label()}: spec.path {git_path!r} holds no manifests")
            target_ns = spec.get("targetNamespace") or kustomize_ns
            for m in manifests:
                if m.kind in ("ResourceQuota", "LimitRange"):
                    limiting.setdefault(target_ns or m.namespace, set()).add((ks.namespace, ks.name))
                elif m.kind in POD_CREATING:
                    pods_in.setdefault((ks.namespace, ks.name), set()).add(target_ns or m.namespace)
            present = {(m.group, m.kind, m.name, target_ns or m.namespace) for m in manifests}
            for check in spec.get("healthChecks") or []:
                api = str(check.get("apiVersion") or "apps/v1")  # internal/inventory: v1beta1 compatibility
                group = api.rpartition("/")[0] if "/" in api else ""
                wanted = (group, check.get("kind"), check.get("name"), check.get("namespace") or "")
                if wanted not in present:
                    self.fail(
                        "R4",
                        ks.path,
                        f"{ks.label()}: healthChecks entry {api} {wanted[1]}/{wanted[2]} in namespace {wanted[3] or '(none)'} "
                        f"is not among the manifests at {git_path!r}: the health check can never pass",
                    )
        # dependsOn cycles: "the interdependent Kustomizations will never be applied".
        graph = {
            key: [(d.get("namespace") or key[0], d.get("name")) for d in (ks.doc.get("spec") or {}).get("dependsOn") or []]
            for key, ks in kustomizations.items()
        }
        done: set[tuple] = set()

        def visit(node: tuple, trail: list[tuple]) -> None:
            if node in trail:
                cycle = " -> ".join(name for _, name in trail[trail.index(node) :] + [node])
                self.fail("R4", kustomizations[trail[-1]].path, f"dependsOn cycle {cycle}: none of it is ever applied")
            elif node in graph and node not in done:
                for nxt in graph[node]:
                    visit(nxt, trail + [node])
                done.add(node)

        for node in sorted(graph):
            visit(node, [])

        def depends(node: tuple, on: tuple, seen: set[tuple]) -> bool:
            if node in seen:
                return False
            seen.add(node)
            return any(dep == on or depends(dep, on, seen) for dep in graph.get(node, []))

        for key, namespaces in sorted(pods_in.items()):
            for namespace in sorted(namespaces):
                for limits in sorted(limiting.get(namespace, set()) - {key}):
                    if not depends(key, limits, set()):
                        self.fail(
                            "R4",
                            kustomizations[key].path,
                            f"{kustomizations[key].label()} applies pods in namespace {namespace} but does not depend on "
                            f"{limits[1]}, which applies its ResourceQuota/LimitRange: the pods may come first",
                        )

        # R9: the Kustomization applying a pod that uses a namespace directory's ConfigMap
        # depends on the one applying that ConfigMap.
        for key, paths in sorted(applied.items()):
            for workload in sorted(paths & set(self.shared_refs)):
                for cm_path, cm_name in sorted(self.shared_refs[workload].items()):
                    providers = sorted(k for k, p in applied.items() if cm_path in p)
                    where = cm_path.relative_to(self.root) if cm_path.is_relative_to(self.root) else cm_path
                    if not providers:
                        self.fail(
                            "R9",
                            kustomizations[key].path,
                            f"{kustomizations[key].label()} applies {workload.relative_to(self.root)}, whose pods use ConfigMap {cm_name}, but no "
                            f"Kustomization of {directory.relative_to(self.root)}/ applies {where}: Flux never creates it",
                        )
                    elif key not in providers and not any(depends(key, p, set()) for p in providers):
                        self.fail(
                            "R9",
                            kustomizations[key].path,
                            f"{kustomizations[key].label()} applies {workload.relative_to(self.root)}, whose pods use ConfigMap {cm_name}, but does not "
                            f"depend on {', '.join(p[1] for p in providers)}, which applies it: the StatefulSet may name it before "
                            "it exists, and the pod waits in ContainerCreating",
                        )

    def packed(self, repo: Obj | None, files: list[Path], reader: str) -> None:
        """Every file a Kustomization or an artifact reads from `repo` is in its artifact: a
        file that spec.ignore leaves out is not applied, and prune deletes what it made."""
        ignore = dig(repo.doc, "spec", "ignore") if repo else None
        if not ignore:
            return
        rules = SourceIgnore(str(ignore))
        for path in files:
            if path.exists() and rules.ignored(self.git_path(path)):
                self.fail(
                    "R4",
                    repo.path,
                    f"{repo.label()}: spec.ignore leaves {self.git_path(path)} out of the artifact, yet {reader} reads it: "
                    "Flux applies the directory without it, and prunes what it made",
                )
                return

    def artifact_generators(self, directory: Path, objs: list, repos: dict) -> dict[tuple, list[str]]:
        """(namespace, name) of each ExternalArtifact the ArtifactGenerators of a Flux
        directory make -> the repository directory of its files, once per generator making it."""
        made: dict[tuple, list[str]] = {}
        for gen in (o for o in objs if o.kind == "ArtifactGenerator"):
            self.count("Flux ArtifactGenerators")
            spec = gen.doc.get("spec") or {}
            aliases = {}
            for source in spec.get("sources") or []:
                alias, kind = str(source.get("alias") or ""), source.get("kind")
                key = (source.get("namespace") or gen.namespace, source.get("name"))
                if not GENERATOR_ALIAS.match(alias):
                    self.fail("R4", gen.path, f"{gen.label()}: source alias {alias!r} does not match {GENERATOR_ALIAS.pattern}")
                if kind != "GitRepository" or key not in repos:
                    self.fail(
                        "R4",
                        gen.path,
                        f"{gen.label()}: source {kind}/{key[0]}/{key[1]} is not a GitRepository of {directory.relative_to(self.root)}/",
                    )
                aliases[alias] = key
            outputs = spec.get("artifacts") or []
            if not 1 <= len(outputs) <= GENERATOR_MAX_ARTIFACTS:
                self.fail(
                    "R4",
                    gen.path,
                    f"{gen.label()}: {len(outputs)} artifacts; the CRD takes 1 to {GENERATOR_MAX_ARTIFACTS} (the API server refuses it)",
                )
            for output in outputs:
                name = str(output.get("name") or "")
                if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
                    self.fail("R4", gen.path, f"{gen.label()}: artifact name {name!r} is not a Kubernetes object name (the CRD's rule)")
                if output.get("revision"):
                    # setArtifactRevisions: `revision: @ALIAS` gives the artifact the source's
                    # revision, the commit, so every merge is a new revision of every box.
                    self.fail(
                        "R4",
                        gen.path,
                        f"{gen.label()}: artifact {name} takes revision {output['revision']!r} from its source: every commit "
                        "becomes a new revision of every box's artifact, and every box reconciles at every merge",
                    )
                copies = output.get("copy") or []
                whole = [c for c in copies if c.get("to") == "@artifact/" and str(c.get("from") or "").endswith("/**")]
                if len(copies) != 1 or not whole:
                    self.fail(
                        "R4",
                        gen.path,
                        f"{gen.label()}: artifact {name}: expected one copy of `@ALIAS/DIR/**` to `@artifact/` "
                        f"(a bundle's files at the artifact's root), got {copies}",
                    )
                    continue
                alias, _, rest = str(whole[0]["from"])[1:].partition("/")
                if alias not in aliases:
                    self.fail("R4", gen.path, f"{gen.label()}: artifact {name} copies from @{alias}, which no source has as alias")
                    continue
                files = self.repo_dir(rest[: -len("/**")])
                if files is None or not files.is_dir() or not any(p.is_file() for p in files.iterdir()):
                    # builder.go: "no files match pattern", and the generator stops there: none
                    # of its artifacts, the other boxes' included, is made again.
                    self.fail(
                        "R4",
                        gen.path,
                        f"{gen.label()}: artifact {name} copies {whole[0]['from']}, which matches no file: the generator fails, "
                        "and every artifact it makes goes stale",
                    )
                    continue
                self.packed(
                    repos.get(aliases[alias]), sorted(p for p in files.iterdir() if p.is_file()), f"{gen.label()} (artifact {name})"
                )
                made.setdefault((gen.namespace, name), []).append(rest[: -len("/**")])
        return made

    # --- R5: Argo CD ApplicationSet --------------------------------------------------------

    def argocd(self, directories: list[Path], bundles: list[Path]) -> None:
        out = self.root / "out"
        # What the repo server lists (GetGitDirectories): directories, hidden ones skipped; Git
        # keeps no empty directory.
        repo_dirs = sorted(
            d
            for d in out.rglob("*")
            if d.is_dir() and not any(p.startswith(".") for p in d.relative_to(self.root).parts) and any(f.is_file() for f in d.rglob("*"))
        )
        repo_dirs.insert(0, out)
        matched: dict[Path, list[str]] = {}
        names: dict[str, str] = {}
        bundle_set = set(bundles)
        for directory in directories:
            for obj in self.objects_of(directory):
                if obj.kind == "Application":
                    self.count("Argo CD Applications")
                    if obj.name in names:
                        self.fail("R5", obj.path, f"{obj.label()}: Application name also generated by {names[obj.name]}")
                    names[obj.name] = obj.label()
                    for source in obj.sources():
                        target = self.repo_dir(str(source["path"]))
                        if target is None or not target.is_dir():
                            self.fail("R5", obj.path, f"{obj.label()}: source path {source['path']!r} is not a directory of the repo")
                if obj.kind != "ApplicationSet":
                    continue
                self.count("ApplicationSets")
                spec = obj.doc.get("spec") or {}
                if dig(spec, "syncPolicy", "preserveResourcesOnDeletion") is not True:
                    self.fail(
                        "R5",
                        obj.path,
                        f"{obj.label()}: syncPolicy.preserveResourcesOnDeletion is not true: deleting the ApplicationSet "
                        f"deletes every box's objects, home volumes included",
                    )
                template_path = str(dig(spec, "template", "spec", "source", "path") or "")
                if re.sub(r"\s", "", template_path) != "{{.path.path}}":
                    self.fail(
                        "R5", obj.path, f"{obj.label()}: the template syncs {template_path!r}, not the matched directory {{{{.path.path}}}}"
                    )
                template_name = str(dig(spec, "template", "metadata", "name") or "")
                for generator in spec.get("generators") or []:
                    directories_spec = dig(generator, "git", "directories")
                    if not directories_spec:
                        continue
                    include = [str(d.get("path", "")) for d in directories_spec if not d.get("exclude")]
                    exclude = [str(d.get("path", "")) for d in directories_spec if d.get("exclude")]
                    for d in repo_dirs:
                        git_path = self.git_path(d)
                        if any(go_path_match(p, git_path) for p in include) and not any(go_path_match(p, git_path) for p in exclude):
                            matched.setdefault(d, []).append(obj.label())
                            app = re.sub(r"{{\s*\.path\.basename(Normalized)?\s*}}", d.name, template_name)
                            if "{{" not in app:
                                if app in names:
                                    self.fail(
                                        "R5",
                                        obj.path,
                                        f"{obj.label()}: generates Application {app} for {git_path}, a name already taken by {names[app]}",
                                    )
                                names[app] = f"{obj.label()} ({git_path})"
        if not self.counts.get("ApplicationSets"):
            return  # Argo CD delivery without an ApplicationSet is not this generator's
        for d in bundles:
            count = len(matched.get(d, []))
            if count != 1:
                by = f" (by {', '.join(matched[d])})" if count else ""
                self.fail(
                    "R5",
                    d,
                    f"bundle directory {d.relative_to(self.root)}/ is matched by {count} ApplicationSet generator(s){by}, not exactly one",
                )
        for d, by in sorted(matched.items()):
            if d not in bundle_set:
                self.fail(
                    "R5",
                    d,
                    f"{d.relative_to(self.root)}/ is not a bundle directory but {', '.join(by)} makes an Application of it",
                )


def at(key: tuple[int, int]) -> str:
    """`wave -1`, or `PreSync phase, wave 0` for a hook."""
    phase = next((name for name, order in PHASE_ORDER.items() if order == key[0]), str(key[0]))
    return f"wave {key[1]}" if phase == "Sync" else f"{phase} phase, wave {key[1]}"


def go_path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: `*` and `?` never cross a `/`; `[...]` classes, `^` negates."""
    regex, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            regex.append("[^/]*")
        elif c == "?":
            regex.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            regex.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return False  # ErrBadPattern: Argo CD logs it and matches nothing
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            regex.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end
        else:
            regex.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(regex), name) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, metavar="REPO", help="a built config repo (devbox.toml, users/, out/)")
    args = parser.parse_args()
    check_matcher()
    root: Path = args.repo.resolve()
    out = root / "out"
    if not out.is_dir():
        print(f"engine rules: no {out}", file=sys.stderr)
        return 2
    repo_path = str(dig(Repo(root).settings, "repo", "path") or "").strip("/")
    checker = Checker(root, f"{repo_path}/" if repo_path else "", Repo(root))

    gitops = out / GITOPS_DIR
    bundles = sorted(d for d in (p.parent for p in out.rglob(KUSTOMIZATION)) if gitops not in d.parents and d != gitops)
    # Every directory Argo CD may sync as an Application: the bundles, and the delivery
    # directories of the namespace and of the Argo CD objects themselves.
    argo_apps = bundles + sorted(d for kind in ("namespace", "argocd") for d in (gitops / kind).glob("*") if d.is_dir())
    for directory in argo_apps:
        checker.application(directory)
    for directory in bundles:
        checker.statefulsets(directory)
        checker.autostop(directory)
        checker.rbac(directory)
        checker.pod_config_maps(directory, out)
        checker.disk(directory)
        checker.claims_settle(directory)
    checker.no_cluster_roles(out)
    for directory in sorted(d for d in (gitops / "flux").glob("*") if d.is_dir()):
        checker.flux(directory)
    argocd_dirs = sorted(d for d in (gitops / "argocd").glob("*") if d.is_dir())
    checker.argocd(argocd_dirs, bundles)
    checker.argo_ignore(argocd_dirs, bundles)
    checker.argo_shared(argocd_dirs)
    checker.argo_refresh_paths(argocd_dirs, bundles)

    for rule, path, message in checker.problems:
        print(f"  FAIL [{rule} {RULE_NAMES[rule]}] {path}: {message}")
    checked = f"{len(bundles)} bundles" + "".join(f", {n} {what}" for what, n in sorted(checker.counts.items()))
    if not any((gitops / engine).is_dir() for engine in ("argocd", "flux")):
        checked += "; no out/_gitops/argocd or flux (no delivery files)"
    if checker.problems:
        per_rule: dict[str, int] = {}
        for rule, _, _ in checker.problems:
            per_rule[rule] = per_rule.get(rule, 0) + 1
        summary = ", ".join(f"{rule} {RULE_NAMES[rule]}: {n}" for rule, n in sorted(per_rule.items()))
        print(f"engine rules: {len(checker.problems)} problem(s) ({summary}); {checked}")
        return 1
    print(f"engine rules: ok; {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
