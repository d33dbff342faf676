#!/usr/bin/python3
"""Run the main container of a generated bundle the way a kubelet would, without a cluster.

Test code for tests/runtime/run.sh; README.md beside this file says which
kubelet and container-runtime behaviours it reproduces and which it does not.

    kubelet.py start   --bundle out/NAME --pod-dir DIR --pv CLAIM=HOSTDIR [--namespace-dir DIR]
                       [--secret NAME=HOSTDIR] [--image-user NAME:UID:GID:HOME:SHELL]
                       [--image-file PATH=HOSTFILE] [--image-volume PATH] [--image-path DIR]
                       [--upstream-strict-modes] [--fs-group-change-policy POLICY]
    kubelet.py exec    --pod-dir DIR [--timeout S] -- CMD...   (kubectl exec)
    kubelet.py ready   --pod-dir DIR --timeout S               (the readinessProbe until it passes)
    kubelet.py sync-config --pod-dir DIR --bundle out/NAME [--namespace-dir DIR]
                                                               (the kubelet's ConfigMap refresh)
    kubelet.py stop    --pod-dir DIR [--grace S]               (pod deletion: SIGTERM, grace, SIGKILL)
    kubelet.py logs    --pod-dir DIR                           (kubectl logs)

ConfigMaps are looked up in the bundle and in the namespace directory of its
cluster, out/_gitops/namespace/<cluster>/ (out/NAME: `default`; out/CLUSTER/NAME:
CLUSTER), where devbox-gen writes the ConfigMaps every box of the namespace shares;
--namespace-dir names another one.

Needs root, util-linux (unshare, nsenter, setpriv, mount), iproute2 and
python3-yaml. Everything it mounts lives in the pod's private mount
namespace and disappears with the pod's processes; on the host it only
writes under --pod-dir and the --pv directories.
"""

import argparse
import base64
import functools
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import yaml

PYTHON = "/usr/bin/python3"
# The image's ENV PATH (Debian's default, after the --image-path
# directories), which the runtime puts first in the container's environment.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where the ServiceAccount admission plugin mounts the automounted token.
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

# pkg/volume/volume_linux.go
RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110


class Refused(Exception):
    """What a kubelet would refuse (an event on the pod), with its reason."""


def log(msg):
    print(f"kubelet: {msg}", file=sys.stderr, flush=True)


def run(*argv, **kw):
    return subprocess.run(list(argv), check=True, **kw)


# ---------------------------------------------------------------------------
# The bundle -> the pod
# ---------------------------------------------------------------------------


def load_bundle(bundle_dir):
    objs = []
    for name in sorted(os.listdir(bundle_dir)):
        if not name.endswith(".yaml") or name == "kustomization.yaml":
            continue
        with open(os.path.join(bundle_dir, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    objs.append(doc)
    return objs


def namespace_dir(bundle_dir, explicit=None):
    """out/_gitops/namespace/<cluster>/ of a bundle: out/NAME is cluster `default`'s,
    out/CLUSTER/NAME CLUSTER's (None if out/ has no _gitops/)."""
    if explicit:
        return os.path.abspath(explicit)
    bundle_dir = os.path.abspath(bundle_dir)
    parent = os.path.dirname(bundle_dir)
    for out, cluster in ((parent, "default"), (os.path.dirname(parent), os.path.basename(parent))):
        if os.path.isdir(os.path.join(out, "_gitops")):
            return os.path.join(out, "_gitops", "namespace", cluster)
    return None


def load_objects(bundle_dir, ns_dir):
    """What the API server holds for the pod: the bundle's objects, then the ConfigMaps of
    the namespace directory (the ones every box of the namespace shares)."""
    objs = load_bundle(bundle_dir)
    if ns_dir and os.path.isdir(ns_dir):
        objs += [o for o in load_bundle(ns_dir) if o.get("kind") == "ConfigMap"]
    return objs


def config_map_of(objs, name, namespace):
    """The ConfigMap NAME of the pod's namespace (the kubelet reads no other), or None."""
    for cm in find(objs, "ConfigMap", name):
        if cm["metadata"].get("namespace", namespace) == namespace:
            return cm
    return None


def projected_config_map_sources(volume):
    """The configMap sources of a projected volume, or None when it has a source of
    another kind (serviceAccountToken, downwardAPI, secret: not emulated)."""
    sources = (volume.get("projected") or {}).get("sources") or []
    if not sources or any(set(s) != {"configMap"} for s in sources):
        return None
    return [s["configMap"] for s in sources]


def volume_payload(v, objs, namespace):
    """{path: (bytes, mode)} of a configMap or projected volume, as the kubelet collects it.
    A projected volume (pkg/volume/projected) merges its sources into one payload, each
    collected like a configMap volume (items, mode) with the projected defaultMode, a later
    source's path replacing an earlier one's; a missing optional source adds nothing, a
    missing required one fails the whole volume."""
    if v["type"] == "configMap":
        cm = config_map_of(objs, v["source"]["name"], namespace)
        if cm is None:
            if v["source"].get("optional"):
                return {}
            raise Refused(f"configmap {v['source']['name']} not found")
        return config_map_payload(cm, v["source"])
    payload = {}
    for src in v["sources"]:
        cm = config_map_of(objs, src["name"], namespace)
        if cm is None:
            if src.get("optional"):
                continue
            raise Refused(f"configmap {src['name']} not found")
        for path, entry in config_map_payload(cm, dict(src, defaultMode=v["defaultMode"])).items():
            if path in payload:
                log(f"projected volume: {path} of configmap {src['name']} replaces an earlier source's")
            payload[path] = entry
    return payload


def find(objs, kind, name=None):
    found = [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
    return found


def expand(value, env):
    """The kubelet's $(VAR) expansion of env values, command and args."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and value.find(")", i) > 0:
            j = value.find(")", i)
            name = value[i + 2 : j]
            out.append(env.get(name, value[i : j + 1]))
            i = j + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def config_map_payload(cm, source):
    """{path: (bytes, mode)} for a configMap volume, as the kubelet projects it."""
    data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        data[k] = base64.b64decode(v)
    return project_items(data, source, "configMap " + cm["metadata"]["name"])


def project_items(data, source, what):
    default_mode = source.get("defaultMode", 0o644)
    for k, v in data.items():
        if not isinstance(v, bytes):
            raise Refused(f"{what}: value of {k} is not a string")
    if "items" not in source:
        return {k: (v, default_mode) for k, v in data.items()}
    payload = {}
    for item in source["items"]:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise Refused(f"{what} has no key {item['key']}")
        payload[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return payload


def secret_payload(source, secrets):
    name = source["secretName"]
    if name not in secrets:
        if source.get("optional"):
            return {}
        raise Refused(f"secret {name} not found (and the volume is not optional): the pod stays in ContainerCreating")
    d = secrets[name]
    data = {}
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            data[f] = fh.read()
    return project_items(data, source, "secret " + name)


def parse_image_user(spec):
    name, uid, gid, home, shell = spec.split(":")
    return {"name": name, "uid": int(uid), "gid": int(gid), "home": home, "shell": shell}


def resolve_pod(args):
    ns_dir = namespace_dir(args.bundle, args.namespace_dir)
    objs = load_objects(args.bundle, ns_dir)
    stss = find(objs, "StatefulSet")
    if len(stss) != 1:
        raise Refused(f"{args.bundle}: expected one StatefulSet, found {len(stss)}")
    sts = stss[0]
    if sts["spec"].get("replicas", 1) < 1:
        raise Refused(f"StatefulSet {sts['metadata']['name']} has replicas 0: there is no pod to run")
    spec = sts["spec"]["template"]["spec"]
    containers = spec["containers"]
    container = containers[0] if args.container is None else next(c for c in containers if c["name"] == args.container)

    psc = spec.get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    if uid is None or gid is None:
        raise Refused("no runAsUser/runAsGroup: the emulated image has no USER to fall back on")
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) and uid == 0:
        raise Refused("container has runAsNonRoot and would run as root (CreateContainerConfigError)")
    fs_group = psc.get("fsGroup")
    policy = args.fs_group_change_policy or psc.get("fsGroupChangePolicy", "Always")
    image_user = parse_image_user(args.image_user) if args.image_user else None

    # Environment: the image's, HOSTNAME from the runtime, then the
    # container's env in order, each value expanded against the ones before.
    # Only this container's env is read: other containers' (valueFrom
    # included) do not concern it.
    env = {"PATH": ":".join(args.image_path + [IMAGE_PATH]), "HOSTNAME": sts["metadata"]["name"] + "-0"}
    declared = {}
    for e in container.get("env") or []:
        if "value" not in e:
            raise Refused(f"env {e['name']}: only literal values are emulated")
        if not isinstance(e["value"], str):
            raise Refused(f"env {e['name']}: value {e['value']!r} is not a string (unquoted YAML 1.1 scalar?)")
        declared[e["name"]] = expand(e["value"], declared)
    env.update(declared)
    if "HOME" not in env and image_user:
        env["HOME"] = image_user["home"]
    command = [expand(a, declared) for a in (container.get("command") or [])]
    cargs = [expand(a, declared) for a in (container.get("args") or [])]
    if not command:
        raise Refused("no command: the emulated image has no ENTRYPOINT")

    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    pvs = dict(kv.split("=", 1) for kv in args.pv)
    secrets = dict(kv.split("=", 1) for kv in args.secret)
    pod = {
        "name": sts["metadata"]["name"] + "-0",
        "container": container["name"],
        "uid": uid,
        "gid": gid,
        "fsGroup": fs_group,
        "supplementalGroups": psc.get("supplementalGroups") or [],
        "fsGroupChangePolicy": policy,
        "noNewPrivs": csc.get("allowPrivilegeEscalation") is False,
        "dropAll": "ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
        "readOnlyRootFilesystem": bool(csc.get("readOnlyRootFilesystem")),
        "workingDir": container.get("workingDir", "/"),
        "terminationGracePeriodSeconds": spec.get("terminationGracePeriodSeconds", 30),
        "env": env,
        "argv": command + cargs,
        "readinessProbe": container.get("readinessProbe"),
        "imageUser": image_user,
        "imageFiles": dict(kv.split("=", 1) for kv in args.image_file),
        "imageVolumes": args.image_volume,
        "upstreamStrictModes": args.upstream_strict_modes,
        "volumes": {},
        "mounts": [],
        "subPaths": [],
        "serviceAccountToken": None,
        "namespace": sts["metadata"].get("namespace", "default"),
        "namespaceDir": ns_dir,
    }

    # The ServiceAccount admission plugin adds a token volume to every
    # container unless the pod (or else its ServiceAccount) opts out, or the
    # container already mounts something at the token's path.
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        sas = find(objs, "ServiceAccount", sa_name)
        automount = sas[0].get("automountServiceAccountToken", True) if sas else True
    if automount and not any(os.path.normpath(m["mountPath"]) == SERVICE_ACCOUNT_PATH for m in container.get("volumeMounts") or []):
        pod["serviceAccountToken"] = sts["metadata"].get("namespace", "default")

    # Volumes: all the pod's containers mount are set up (the kubelet sets
    # them up before any container starts), but a type that is not emulated
    # is refused only when the emulated container mounts it.
    own = {m["name"] for m in container.get("volumeMounts") or []}
    used = {m["name"] for c in containers for m in c.get("volumeMounts") or []}
    for name in sorted(used):
        v = volumes.get(name)
        if v is None:
            raise Refused(f"volumeMount {name} has no volume")
        emulated = any(t in v for t in ("configMap", "secret", "persistentVolumeClaim", "emptyDir"))
        emulated = emulated or projected_config_map_sources(v) is not None
        if name not in own and not emulated:
            kind = next((k for k in v if k != "name"), "?")
            log(f"volume {name}: {kind} not emulated; skipped, as container {container['name']} does not mount it")
            continue
        where = "the bundle" + (f" or {ns_dir}" if ns_dir else "")
        if "configMap" in v:
            src = v["configMap"]
            if config_map_of(objs, src["name"], pod["namespace"]) is None and not src.get("optional"):
                raise Refused(f"configmap {src['name']} not found in {where}: the pod stays in ContainerCreating (FailedMount)")
            pod["volumes"][name] = {"type": "configMap", "source": src}
        elif "projected" in v:
            sources = projected_config_map_sources(v)
            if sources is None:
                kinds = sorted({k for s in (v["projected"].get("sources") or []) for k in s})
                raise Refused(f"volume {name}: projected with {kinds} sources not emulated (configMap sources only)")
            for src in sources:
                if config_map_of(objs, src["name"], pod["namespace"]) is None and not src.get("optional"):
                    raise Refused(
                        f"configmap {src['name']} (projected volume {name}) not found in {where}: the pod stays in ContainerCreating (FailedMount)"
                    )
            pod["volumes"][name] = {"type": "projected", "sources": sources, "defaultMode": v["projected"].get("defaultMode", 0o644)}
        elif "secret" in v:
            pod["volumes"][name] = {"type": "secret", "source": v["secret"], "secrets": secrets}
        elif "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            # A read-only claim may exist outside the bundle (a dataset: devbox.toml's
            # [datasets] names claims the platform team made); a writable one must be the
            # bundle's own.
            if not find(objs, "PersistentVolumeClaim", claim) and not v["persistentVolumeClaim"].get("readOnly"):
                raise Refused(f"persistentvolumeclaim {claim} is not in the bundle")
            if claim not in pvs:
                raise Refused(f"no --pv for claim {claim}")
            pod["volumes"][name] = {
                "type": "pvc",
                "claim": claim,
                "path": os.path.abspath(pvs[claim]),
                "readOnly": bool(v["persistentVolumeClaim"].get("readOnly")),
            }
        elif "emptyDir" in v:
            empty = v["emptyDir"] or {}
            pod["volumes"][name] = {"type": "emptyDir", "medium": empty.get("medium", ""), "sizeLimit": empty.get("sizeLimit")}
        else:
            raise Refused(f"volume {name}: type not emulated")
    for c in containers:
        for m in c.get("volumeMounts") or []:
            if m.get("subPath") and m["name"] in pod["volumes"]:
                pod["subPaths"].append([m["name"], m["subPath"]])
    for m in container.get("volumeMounts") or []:
        pod["mounts"].append(
            {"name": m["name"], "mountPath": m["mountPath"], "subPath": m.get("subPath", ""), "readOnly": bool(m.get("readOnly"))}
        )
    return pod, objs


# ---------------------------------------------------------------------------
# Volumes, as the kubelet lays them out
# ---------------------------------------------------------------------------


def walk_deep(path):
    """Children before their directory, like the kubelet's walkDeep."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        for name in os.listdir(path):
            yield from walk_deep(os.path.join(path, name))
    yield path


def requires_permission_change(root, fs_group, readonly):
    st = os.stat(root)
    if st.st_gid != fs_group or not stat.S_ISDIR(st.st_mode):
        return True
    want = (RO_MASK if readonly else RW_MASK) | EXEC_MASK
    return (st.st_mode & want) != want or not st.st_mode & stat.S_ISGID


def set_volume_ownership(root, fs_group, readonly, policy):
    """SetVolumeOwnership: group fsGroup, g+rw (g+r read-only), dirs g+x and setgid.

    The owner is kept; symlinks are skipped. OnRootMismatch skips the walk
    when the volume's root already has the group and the bits.
    """
    if fs_group is None:
        return False
    if policy == "OnRootMismatch" and not requires_permission_change(root, fs_group, readonly):
        return False
    for p in walk_deep(root):
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            continue
        os.chown(p, st.st_uid, fs_group)
        mask = RO_MASK if readonly else RW_MASK
        if stat.S_ISDIR(st.st_mode):
            mask |= stat.S_ISGID | EXEC_MASK
        os.chmod(p, stat.S_IMODE(st.st_mode) | mask)
    return True


def atomic_write(target, payload, set_perms):
    """The kubelet's AtomicWriter: files in a timestamped directory, ..data
    pointing at it, user-visible symlinks into ..data; an update swaps ..data
    with one rename."""
    visible = set()
    for dirpath, dirnames, filenames in os.walk(target):
        rel = os.path.relpath(dirpath, target)
        if rel != "." and rel.split("/")[0].startswith(".."):
            continue
        dirnames[:] = [d for d in dirnames if not (rel == "." and d.startswith(".."))]
        for n in dirnames + filenames:
            if rel == "." and n.startswith(".."):
                continue
            visible.add(os.path.normpath(os.path.join(rel, n)))
    wanted = set()
    for p in payload:
        while p:
            wanted.add(p)
            p = os.path.dirname(p)
    to_remove = visible - wanted

    def current(p):
        try:
            with open(os.path.join(target, p), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    if all(current(p) == data for p, (data, _) in payload.items()) and not to_remove:
        return False
    ts = tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S."), dir=target)
    os.chmod(ts, 0o755)
    for p, (data, mode) in payload.items():
        full = os.path.join(ts, p)
        os.makedirs(os.path.dirname(full), 0o777, exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.chmod(full, mode)
    set_perms()
    for p in payload:
        link = os.path.join(target, p)
        os.makedirs(os.path.dirname(link), 0o777, exist_ok=True)
        if not os.path.islink(link):
            depth = p.count("/")
            os.symlink(os.path.join("../" * depth + "..data", p), link)
    data_link = os.path.join(target, "..data")
    old = os.readlink(data_link) if os.path.islink(data_link) else None
    os.symlink(os.path.basename(ts), os.path.join(target, "..data_tmp"))
    os.rename(os.path.join(target, "..data_tmp"), data_link)
    for p in sorted(to_remove, reverse=True):
        full = os.path.join(target, p)
        if os.path.isdir(full) and not os.path.islink(full):
            os.rmdir(full)
        else:
            os.remove(full)
    if old:
        shutil.rmtree(os.path.join(target, old))
    return True


def tmpfs_size(limit):
    """A Kubernetes binary quantity (`8Gi`, `512Mi`) as tmpfs's size= option; 16m without one."""
    if not limit:
        return "16m"
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g"), ("Ti", "t")):
        if limit.endswith(suffix) and limit[: -len(suffix)].isdigit():
            return limit[: -len(suffix)] + unit
    raise Refused(f"emptyDir sizeLimit {limit} is not emulated")


def empty_dir(path):
    """An emptyDir (and the emptyDir under configMap and secret volumes): 0777, root-owned."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)


def fresh_pv(path):
    """A freshly provisioned, freshly formatted volume: root:root 0755 with lost+found."""
    os.makedirs(path)
    os.chmod(path, 0o755)
    os.mkdir(os.path.join(path, "lost+found"), 0o700)


def project_volume(pod, name, vol_dir, objs):
    v = pod["volumes"][name]
    if v["type"] in ("configMap", "projected"):
        payload = volume_payload(v, objs, pod["namespace"])
    else:
        payload = secret_payload(v["source"], v["secrets"])
    atomic_write(vol_dir, payload, lambda: set_volume_ownership(vol_dir, pod["fsGroup"], True, "Always"))


def host_volume_dir(pod_dir, pod, name):
    v = pod["volumes"][name]
    if v["type"] == "pvc":
        return v["path"]
    return os.path.join(pod_dir, "volumes", v["type"], name)


def setup_volumes(pod_dir, pod, objs):
    """Everything that lives on the node's disk; secrets (tmpfs) are done in the sandbox."""
    for name, v in pod["volumes"].items():
        d = host_volume_dir(pod_dir, pod, name)
        if v["type"] == "pvc":
            if not os.path.exists(d):
                fresh_pv(d)
                log(f"volume {name}: new volume for claim {v['claim']} at {d}")
            if v["readOnly"]:
                # CSI volumes (GKE's persistent disks and Filestore): the pod's readOnly
                # makes the volume spec read-only, and csiMountMgr.supportsFSGroup
                # (pkg/volume/csi/csi_mounter.go) then skips the fsGroup walk entirely.
                log(f"volume {name}: read-only claim {v['claim']}, fsGroup not applied")
                continue
            changed = set_volume_ownership(d, pod["fsGroup"], v["readOnly"], pod["fsGroupChangePolicy"])
            log(
                f"volume {name}: fsGroup {pod['fsGroup']} ownership "
                + ("applied" if changed else f"skipped ({pod['fsGroupChangePolicy']}, root matches)")
            )
        elif v["type"] == "emptyDir":
            empty_dir(d)
            if v["medium"] != "Memory":
                set_volume_ownership(d, pod["fsGroup"], False, pod["fsGroupChangePolicy"])
        elif v["type"] in ("configMap", "projected"):
            empty_dir(d)
            project_volume(pod, name, d, objs)
        elif v["type"] == "secret":
            os.makedirs(d, exist_ok=True)  # mount point of its tmpfs
    if pod["serviceAccountToken"] is not None:
        # The automounted kube-api-access volume (projected: token, ca.crt,
        # namespace; defaultMode 0644). The token is a dummy: no API server.
        d = os.path.join(pod_dir, "volumes", "serviceaccount")
        empty_dir(d)
        payload = {
            "token": (b"emulated-service-account-token", 0o644),
            "ca.crt": (b"-----BEGIN CERTIFICATE-----\nemulated\n-----END CERTIFICATE-----\n", 0o644),
            "namespace": (pod["serviceAccountToken"].encode(), 0o644),
        }
        atomic_write(d, payload, lambda: set_volume_ownership(d, pod["fsGroup"], True, "Always"))
    # subPath directories, created by the kubelet for every container that
    # mounts one: owned by the kubelet (root), with the mode of the volume's
    # root (setgid included), in the volume's group through setgid.
    for name, sub in pod["subPaths"]:
        base = host_volume_dir(pod_dir, pod, name)
        if pod["volumes"][name]["type"] == "secret":
            continue
        full = os.path.join(base, sub)
        if not os.path.exists(full):
            mode = stat.S_IMODE(os.stat(base).st_mode)
            os.makedirs(full)
            os.chmod(full, mode)


# ---------------------------------------------------------------------------
# The sandbox: runs as PID 1 of the pod's namespaces, builds the container's
# root file system and execs the container's command as its user.
# ---------------------------------------------------------------------------


def mount(*args):
    run("mount", *args)


def in_root(root, path):
    """PATH inside ROOT with every symlink resolved inside ROOT (runc's
    securejoin): an absolute link such as /var/run -> /run stays in the
    container's root instead of reaching the host's."""
    parts = [p for p in path.split("/") if p]
    cur, links = root, 0
    while parts:
        p = parts.pop(0)
        if p == ".":
            continue
        if p == "..":
            cur = root if cur == root else os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, p)
        if os.path.islink(nxt):
            links += 1
            if links > 40:
                raise Refused(f"{path}: too many levels of symbolic links")
            target = os.readlink(nxt)
            if target.startswith("/"):
                cur = root
            parts = [x for x in target.split("/") if x] + parts
            continue
        cur = nxt
    return cur


def build_rootfs(pod_dir, pod, root):
    """The image: the host's Debian /usr (read-only) with an empty /usr/local,
    a copy of /etc with the image's user, and empty top-level directories."""
    mount("-t", "tmpfs", "-o", "mode=0755,size=64m", "tmpfs", root)
    for entry in sorted(os.listdir("/")):
        src, dst = "/" + entry, os.path.join(root, entry)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif not os.path.isdir(src):
            continue
        elif entry in ("usr", "var"):
            os.mkdir(dst, 0o755)
            mount("--rbind", src, dst)
            mount("-o", "remount,bind,ro", dst)
        elif entry == "etc":
            run("cp", "-a", src, dst)
        elif entry in ("tmp", "run", "home", "root", "opt", "srv", "mnt", "media", "proc", "dev", "sys"):
            os.mkdir(dst)
            os.chmod(dst, {"tmp": 0o1777, "root": 0o700, "proc": 0o555, "sys": 0o555}.get(entry, 0o755))
        # Anything else on the host (checkouts, caches, the CI's own files)
        # is not part of the image.
    local = os.path.join(root, "usr/local")
    mount("-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", local)
    for d in ("bin", "sbin", "lib", "share", "etc", "include", "src"):
        os.mkdir(os.path.join(local, d), 0o755)

    etc = os.path.join(root, "etc")
    u = pod["imageUser"]
    if u:

        def rewrite(path, line, key):
            with open(path) as f:
                lines = [entry for entry in f.read().splitlines() if not key(entry.split(":"))]
            with open(path, "w") as f:
                f.write("\n".join(lines + [line]) + "\n")

        rewrite(
            os.path.join(etc, "passwd"),
            f"{u['name']}:x:{u['uid']}:{u['gid']}::{u['home']}:{u['shell']}",
            lambda f: f[0] == u["name"] or f[2] == str(u["uid"]),
        )
        # Debian's sshd (patch user-group-modes) accepts a group-writable
        # home or ~/.ssh when the group's only member is its owner; a second
        # member makes it apply upstream OpenSSH's StrictModes.
        members = f"{u['name']},nobody" if pod["upstreamStrictModes"] else ""
        rewrite(os.path.join(etc, "group"), f"{u['name']}:x:{u['gid']}:{members}", lambda f: f[0] == u["name"] or f[2] == str(u["gid"]))
    for path, host_file in pod["imageFiles"].items():
        dst = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
        shutil.copy(host_file, dst)
        os.chmod(dst, 0o755)
    # Files the kubelet manages in every container.
    with open(os.path.join(etc, "hostname"), "w") as f:
        f.write(pod["name"] + "\n")
    with open(os.path.join(etc, "hosts"), "w") as f:
        f.write("# Kubernetes-managed hosts file (emulated).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")

    # What runc mounts in every container.
    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", os.path.join(root, "proc"))
    dev = os.path.join(root, "dev")
    mount("-t", "tmpfs", "-o", "mode=0755,nosuid,size=65536k", "tmpfs", dev)
    for n in ("null", "zero", "full", "random", "urandom", "tty"):
        open(os.path.join(dev, n), "w").close()
        mount("--bind", "/dev/" + n, os.path.join(dev, n))
    os.mkdir(os.path.join(dev, "pts"))
    mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec", "devpts", os.path.join(dev, "pts"))
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.mkdir(os.path.join(dev, "shm"))
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,noexec,size=65536k", "shm", os.path.join(dev, "shm"))
    for i, n in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", os.path.join(dev, n))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    try:
        mount("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", os.path.join(root, "sys"))
    except subprocess.CalledProcessError:
        log("sysfs not mounted (not permitted here); /sys stays empty")


def sandbox(pod_dir):
    with open(os.path.join(pod_dir, "pod.json")) as f:
        pod = json.load(f)
    root = os.path.join(pod_dir, "rootfs")
    build_rootfs(pod_dir, pod, root)

    for name, v in pod["volumes"].items():
        if v["type"] == "secret" or (v["type"] == "emptyDir" and v["medium"] == "Memory"):
            d = host_volume_dir(pod_dir, pod, name)
            # A Memory emptyDir is a tmpfs of its sizeLimit (the kubelet passes it as
            # size=), as /dev/shm with `shm` is; a Secret's is small.
            size = tmpfs_size(v.get("sizeLimit")) if v["type"] == "emptyDir" else "16m"
            mount("-t", "tmpfs", "-o", f"mode=1777,size={size}", "tmpfs", d)
            if v["type"] == "secret":
                project_volume(pod, name, d, None)
            else:
                set_volume_ownership(d, pod["fsGroup"], False, pod["fsGroupChangePolicy"])

    # The pod's mounts plus the image's VOLUMEs, as containerd does it: an
    # image VOLUME gets a new, container-local directory (with the image's
    # content at that path copied in) unless a pod mount has exactly its
    # path, and mounts go in order of depth, so an image VOLUME below a pod
    # mount shadows that part of it.
    mounts = []
    for m in pod["mounts"]:
        v = pod["volumes"][m["name"]]
        base = host_volume_dir(pod_dir, pod, m["name"])
        src = base
        if m["subPath"]:
            # The kubelet resolves a subPath's symlinks (a configMap key is a
            # symlink into ..data) and refuses one that leaves the volume; a
            # file is bind-mounted as a file.
            src = os.path.realpath(os.path.join(base, m["subPath"]))
            real_base = os.path.realpath(base)
            if src != real_base and not src.startswith(real_base + "/"):
                raise Refused(f"subPath {m['subPath']} of volume {m['name']} leaves the volume")
        # configMap, Secret and projected volumes are always mounted read-only.
        ro = m["readOnly"] or v.get("readOnly") or v["type"] in ("configMap", "secret", "projected")
        mounts.append((os.path.normpath(m["mountPath"]), src, ro))
    if pod["serviceAccountToken"] is not None:
        mounts.append((SERVICE_ACCOUNT_PATH, os.path.join(pod_dir, "volumes", "serviceaccount"), True))
    for i, path in enumerate(pod["imageVolumes"]):
        path = os.path.normpath(path)
        if any(path == dst for dst, _, _ in mounts):
            continue
        src = os.path.join(pod_dir, "volumes", "image", str(i))
        in_image = os.path.join(root, path.lstrip("/"))
        if os.path.isdir(in_image):
            run("cp", "-a", in_image, src)
        else:
            os.makedirs(src, 0o755)
        mounts.append((path, src, False))
        log(f"image VOLUME {path}: container-local directory")
    for dst, src, ro in sorted(mounts, key=lambda m: m[0].count("/")):
        target = in_root(root, dst)
        if os.path.isdir(src):
            os.makedirs(target, exist_ok=True)
        else:
            # A file (subPath): bind-mounted onto an empty file, as runc does.
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "w").close()
        mount("--bind", src, target)
        if ro:
            mount("-o", "remount,bind,ro", target)

    run("ip", "link", "set", "lo", "up")
    socket.sethostname(pod["name"])
    if pod["readOnlyRootFilesystem"]:
        mount("-o", "remount,ro", root)
        mount("-o", "remount,ro", os.path.join(root, "usr/local"))

    groups = [pod["fsGroup"]] if pod["fsGroup"] is not None else []
    groups += pod["supplementalGroups"]
    argv = ["/usr/bin/setpriv", f"--reuid={pod['uid']}", f"--regid={pod['gid']}"]
    argv += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    argv += ["--inh-caps=-all"]
    if pod["dropAll"]:
        argv += ["--bounding-set=-all"]
    if pod["noNewPrivs"]:
        argv += ["--no-new-privs"]
    argv += ["--"] + pod["argv"]

    with open(os.path.join(pod_dir, "started"), "w") as f:
        f.write(str(time.time()))
    os.chroot(root)
    os.chdir(pod["workingDir"])
    os.umask(0o022)
    os.execve(argv[0], argv, pod["env"])


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def read_pid(pod_dir, name):
    try:
        with open(os.path.join(pod_dir, name)) as f:
            return int(f.read())
    except FileNotFoundError:
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(p))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return out


def cmd_start(args):
    pod_dir = os.path.abspath(args.pod_dir)
    if os.path.exists(pod_dir):
        raise Refused(f"{pod_dir} exists: one directory per pod")
    pod, objs = resolve_pod(args)
    os.makedirs(os.path.join(pod_dir, "rootfs"))
    os.chmod(pod_dir, 0o700)
    setup_volumes(pod_dir, pod, objs)
    with open(os.path.join(pod_dir, "pod.json"), "w") as f:
        json.dump(pod, f, indent=1)
    # The sandbox writes to its own copy of the log's descriptor: this one is closed at once.
    with open(os.path.join(pod_dir, "container.log"), "ab") as logf:
        unshare = ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "--kill-child", "--propagation", "private"]
        proc = subprocess.Popen(
            unshare + [PYTHON, os.path.abspath(__file__), "_sandbox", pod_dir],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
    with open(os.path.join(pod_dir, "unshare.pid"), "w") as f:
        f.write(str(proc.pid))
    deadline = time.time() + args.timeout
    init = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Refused(f"the container exited at once (status {proc.returncode}); log:\n" + logs(pod_dir))
        kids = children(proc.pid)
        if kids and init is None:
            init = kids[0]
            with open(os.path.join(pod_dir, "init.pid"), "w") as f:
                f.write(str(init))
        if init and os.path.exists(os.path.join(pod_dir, "started")):
            log(f"pod {pod['name']}: container {pod['container']} started (pid {init}, uid {pod['uid']})")
            return 0
        time.sleep(0.05)
    raise Refused("the sandbox did not start in time; log:\n" + logs(pod_dir))


def logs(pod_dir):
    try:
        with open(os.path.join(pod_dir, "container.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def load_pod(pod_dir):
    with open(os.path.join(pod_dir, "pod.json")) as f:
        return json.load(f)


def exec_argv(pod_dir, pod, argv):
    """kubectl exec: the container's namespaces, root, user, groups and environment."""
    init = read_pid(pod_dir, "init.pid")
    if init is None or not alive(init):
        raise Refused("the container is not running")
    groups = [pod["fsGroup"]] if pod["fsGroup"] is not None else []
    groups += pod["supplementalGroups"]
    user = ["/usr/bin/setpriv", f"--reuid={pod['uid']}", f"--regid={pod['gid']}"]
    user += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    user += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"] if pod["dropAll"] else []
    # The working directory is changed inside the container's root: nsenter's
    # --wd=DIR would resolve DIR outside the chroot the sandbox runs in.
    nsenter = ["nsenter", f"--target={init}", "--mount", "--uts", "--ipc", "--net", "--pid", "--root"]
    return nsenter + ["/usr/bin/env", f"--chdir={pod['workingDir']}"] + user + ["--"] + argv


def cmd_exec(args):
    pod_dir = os.path.abspath(args.pod_dir)
    pod = load_pod(pod_dir)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    try:
        return subprocess.run(exec_argv(pod_dir, pod, argv), env=pod["env"], timeout=args.timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        log(f"exec timed out after {args.timeout}s")
        return 124


def cmd_ready(args):
    """Runs the readinessProbe (exec probes only) until it passes. The probe's
    periodSeconds is not honoured: it is retried every half second."""
    pod_dir = os.path.abspath(args.pod_dir)
    pod = load_pod(pod_dir)
    probe = pod["readinessProbe"]
    if not probe or "exec" not in probe:
        raise Refused("only exec readiness probes are emulated")
    deadline = time.time() + args.timeout
    init = read_pid(pod_dir, "init.pid")
    while time.time() < deadline:
        if not alive(init) or zombie(init):
            raise Refused("the container exited; log:\n" + logs(pod_dir))
        try:
            r = subprocess.run(
                exec_argv(pod_dir, pod, probe["exec"]["command"]),
                env=pod["env"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=probe.get("timeoutSeconds", 1),
                check=False,
            )
            if r.returncode == 0:
                log(f"pod {pod['name']}: ready")
                return 0
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.5)
    raise Refused(f"not ready after {args.timeout}s; log:\n" + logs(pod_dir))


def cmd_sync_config(args):
    """The kubelet's periodic sync of configMap and projected volumes in a running pod
    (the same AtomicWriter update; a subPath mount of one keeps the file it started with).
    A required ConfigMap gone from the API server leaves the volume as it was."""
    pod_dir = os.path.abspath(args.pod_dir)
    pod = load_pod(pod_dir)
    objs = load_objects(args.bundle, namespace_dir(args.bundle, args.namespace_dir) or pod["namespaceDir"])
    for name, v in pod["volumes"].items():
        if v["type"] in ("configMap", "projected"):
            try:
                payload = volume_payload(v, objs, pod["namespace"])
            except Refused as e:
                log(f"volume {name}: not updated: {e}")
                continue
            d = host_volume_dir(pod_dir, pod, name)
            changed = atomic_write(d, payload, functools.partial(set_volume_ownership, d, pod["fsGroup"], True, "Always"))
            log(f"volume {name}: " + ("updated" if changed else "unchanged"))
    return 0


def cmd_stop(args):
    """Pod deletion: SIGTERM to the container's PID 1, SIGKILL after the grace
    period. The pod's other processes die with its PID 1 (PID namespace)."""
    pod_dir = os.path.abspath(args.pod_dir)
    init = read_pid(pod_dir, "init.pid")
    unshare = read_pid(pod_dir, "unshare.pid")
    if init is None and unshare and alive(unshare):
        # Stopped while starting: the sandbox is unshare's only child.
        init = next(iter(children(unshare)), None)
    grace = args.grace
    if os.path.exists(os.path.join(pod_dir, "pod.json")):
        grace = min(grace, load_pod(pod_dir)["terminationGracePeriodSeconds"])
    status = "not running"
    if init and alive(init):
        os.kill(init, signal.SIGTERM)
        deadline = time.time() + grace
        while time.time() < deadline and alive(init) and not zombie(init):
            time.sleep(0.05)
        if alive(init) and not zombie(init):
            os.kill(init, signal.SIGKILL)
            status = f"killed after the {grace}s grace period"
        else:
            status = "exited on SIGTERM"
    if unshare and alive(unshare):
        deadline = time.time() + 5
        while time.time() < deadline and alive(unshare) and not zombie(unshare):
            time.sleep(0.05)
        if alive(unshare) and not zombie(unshare):
            os.killpg(unshare, signal.SIGKILL)
    print(status)
    return 0 if status != f"killed after the {grace}s grace period" else 1


def zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start")
    p.add_argument("--bundle", required=True)
    p.add_argument("--namespace-dir", help="the namespace directory of shared ConfigMaps (default: out/_gitops/namespace/<cluster>/)")
    p.add_argument("--pod-dir", required=True)
    p.add_argument("--container")
    p.add_argument("--pv", action="append", default=[], metavar="CLAIM=HOSTDIR")
    p.add_argument("--secret", action="append", default=[], metavar="NAME=HOSTDIR")
    p.add_argument("--image-user", metavar="NAME:UID:GID:HOME:SHELL")
    p.add_argument("--image-file", action="append", default=[], metavar="PATH=HOSTFILE")
    p.add_argument("--image-volume", action="append", default=[], metavar="PATH")
    p.add_argument(
        "--image-path", action="append", default=[], metavar="DIR", help="put DIR before the image's ENV PATH (repeatable, in order)"
    )
    p.add_argument(
        "--upstream-strict-modes", action="store_true", help="make Debian's sshd refuse a group-writable home like upstream OpenSSH"
    )
    p.add_argument("--fs-group-change-policy", choices=["Always", "OnRootMismatch"])
    p.add_argument("--timeout", type=float, default=20)
    p = sub.add_parser("exec")
    p.add_argument("--pod-dir", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("ready")
    p.add_argument("--pod-dir", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("sync-config")
    p.add_argument("--pod-dir", required=True)
    p.add_argument("--bundle", required=True)
    p.add_argument("--namespace-dir")
    p = sub.add_parser("stop")
    p.add_argument("--pod-dir", required=True)
    p.add_argument("--grace", type=float, default=30)
    p = sub.add_parser("logs")
    p.add_argument("--pod-dir", required=True)
    p = sub.add_parser("_sandbox")
    p.add_argument("pod_dir")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("kubelet.py: must run as root")
    try:
        if args.cmd == "_sandbox":
            sandbox(args.pod_dir)
        elif args.cmd == "logs":
            sys.stdout.write(logs(os.path.abspath(args.pod_dir)))
            return 0
        return {"start": cmd_start, "exec": cmd_exec, "ready": cmd_ready, "sync-config": cmd_sync_config, "stop": cmd_stop}[args.cmd](args)
    except Refused as e:
        log(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
