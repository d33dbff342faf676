// devbox-gen's Kubernetes library: one developer box = one bundle of objects.
//
//   local devbox = import 'devbox-gen/devbox.libsonnet';
//   function(box) devbox.bundle(box)
//
// `box` is one user's file after validation and defaulting by devbox-gen
// (name, source, email, state, namespace, cluster, image, arch, resources,
// shm, spot, datasets, gpu, home, ssh, tailscale, env, runtime, network,
// idle, schedule, autostop, owner;
// `devbox-gen show --input NAME` prints it, and docs/design.md describes it).
//
// bundle(box) returns an object keyed by component:
//   serviceAccount, configMap, scripts, homeVolume, tailscaleState,
//   tailscaleRole, tailscaleRoleBinding, statefulSet, service, networkPolicy,
//   and where the box has them: idleRole, idleRoleBinding ([idle],
//   [schedule]), wakeServiceAccount, wakeCronJob ([schedule]), ownerRole,
//   ownerRoleBinding ([owners]).
// `scripts` is the same in every box of a namespace: devbox-gen writes it
// once, to out/_gitops/namespace/<cluster>/ (see scriptsConfigMap).
// devbox-gen writes every value that has apiVersion and kind to its own file,
// so a custom template customises with ordinary jsonnet:
//
//   devbox.bundle(box) + {
//     statefulSet+: { metadata+: { labels+: { team: 'ml' } } },
//     networkPolicy: null,   // null (or {}) drops a component
//     extra: { apiVersion: 'v1', kind: 'ConfigMap', ... },   // adds one
//   }
//
// For an archived box only homeVolume is emitted: the other components are
// still there, as hidden fields, so the mix-in above works for every state
// and an archived box stays archived whatever a template patches. (A
// component that a template adds is emitted in every state; look at
// box.state to add it only to some.)
//
// Settings below (ports, paths, sidecar resources, scratch disk, files) are fields of this
// object, so they can be overridden before building the bundle:
//
//   local devbox = (import 'devbox-gen/devbox.libsonnet') + {
//     tailscaleResources:: { cpu: '500m', memory: '256Mi' },
//     files+:: { sshd_config: importstr 'my_sshd_config' },
//   };
//
// What is the same in every box (the sidecar's variables and probes, the
// pod's scratch volumes, the NetworkPolicy's rules) is a field too, not part
// of a function of the box: jsonnet evaluates a field once and keeps it, so
// a build evaluates these once per thread rather than once per box (about
// a tenth of its time). Override them the same way (`tailscaleEnv+:: [...]`).
//
// Everything here is hidden (::), so the library itself is never mistaken
// for a manifest.
{
  // ---------------------------------------------------------------------------
  // Settings
  // ---------------------------------------------------------------------------

  // sshd and Jupyter listen on these ports on 127.0.0.1 only (see
  // sshd_config and jupyterArgs); the tailscale sidecar forwards tailnet
  // connections to them. sshd_config names its port too: change both.
  sshPort:: 2222,
  jupyterPort:: 8888,
  // Fixed WireGuard port of tailscaled, so the NetworkPolicy can admit direct
  // (peer-to-peer) connections instead of relaying everything through DERP.
  wireguardPort:: 41641,
  // containerboot's /healthz (TS_ENABLE_HEALTH_CHECK), probed by the kubelet.
  tailscaleHealthPort:: 9002,
  // SOCKS5 and HTTP proxy into the tailnet, on loopback: in userspace mode
  // this is how programs on the box reach other tailnet hosts, e.g.
  // ALL_PROXY=socks5h://127.0.0.1:1055 or ssh -o ProxyCommand='nc -X 5 -x 127.0.0.1:1055 %h %p'.
  tailnetProxyAddress:: '127.0.0.1:1055',

  // The home volume is mounted at /storage, never at /home or /home/jupyter:
  // the image's VOLUME /home/jupyter would shadow it, and a root-owned mount
  // point as the home breaks sshd's StrictModes. The image's jupyter user
  // must have homeDir as its home in /etc/passwd (see start.sh).
  homeMountPath:: '/storage',
  homeDir:: '/storage/jupyter',
  configMountPath:: '/etc/devbox',
  // Login shells (ssh, VS Code and Jupyter terminals) source /etc/profile,
  // which on Debian and Ubuntu resets PATH; this file, from the ConfigMap,
  // restores the container's PATH after it (see profile.sh).
  profileScriptPath:: '/etc/profile.d/devbox.sh',
  // sshd's pid file (sshd_config's PidFile), read by the probes.
  sshdPidFile:: '/tmp/sshd.pid',
  // Where client-go, and so tailscale's containerboot, looks for the
  // service-account token, CA and namespace. Only the tailscale sidecar
  // mounts a token there.
  serviceAccountTokenPath:: '/var/run/secrets/kubernetes.io/serviceaccount',
  // The token's lifetime, as the kubelet's own automounted token has it; the
  // kubelet rotates it well before it expires, and containerboot re-reads
  // it every 30 minutes.
  serviceAccountTokenSeconds:: 3607,
  // The cloud metadata server (GCE, EKS, AKS all answer on it). Without
  // Workload Identity it hands out the node's service-account token to any
  // pod that asks, so `[network] metadata = "block"` (the default) denies it.
  metadataServerCidr:: '169.254.169.254/32',
  // The same server on IPv6, for dual-stack and IPv6 clusters: EC2's
  // (Nitro instances, http-protocol-ipv6) and Compute Engine's.
  metadataServerCidrsIPv6:: ['fd00:ec2::254/128', 'fd20:ce::254/128'],
  secretsMountPath:: '/secrets',
  tailscaleAuthMountPath:: '/etc/tailscale-auth',
  // The key of the auth key in tailscale.auth_key_secret (tailscale's own
  // Kubernetes examples use this name): a reusable, tagged auth key.
  tailscaleAuthKeyKey:: 'TS_AUTHKEY',
  agentSocket:: '/tmp/devbox-ssh-agent.sock',

  // The main container runs this startup script with the Jupyter command as
  // its arguments.
  command:: ['/bin/bash', $.configMountPath + '/start.sh'],
  jupyterArgs:: [
    'jupyter',
    'lab',
    '--ip=127.0.0.1',
    '--port=' + $.jupyterPort,
    '--no-browser',
    '--ServerApp.root_dir=' + $.homeDir,
    // Jupyter listens on loopback, where the tailscale sidecar delivers
    // tailnet connections, but with --ip=127.0.0.1 jupyter_server refuses any
    // request whose Host header is not local ("Blocking request with
    // non-local 'Host'"): http://alice-devbox:8888 and the node's 100.x
    // address would get 403. The Host check guards against DNS rebinding of a
    // server on a laptop's localhost; here the only way in is the tailnet
    // (ACLs) or an ssh tunnel, and the token is still required.
    '--ServerApp.allow_remote_access=True',
  ],

  // The tailscale sidecar's requests and limits (equal, so the pod keeps the
  // Guaranteed QoS class). Userspace WireGuard is CPU-bound; this is ample
  // for SSH, VS Code and the odd scp of a data set.
  tailscaleResources:: { cpu: '250m', memory: '256Mi' },

  // Node-local disk the developer's container asks for: /tmp and /var/tmp
  // (pip unpacks every wheel of an install there before it goes into the
  // home volume: about 3 GB for PyTorch with its CUDA libraries), its
  // writable layer and its logs. A request without a limit, so the pod stays
  // as it was on GKE Standard (bounded by the node's disk, never evicted for
  // its own use) while the scheduler counts it against the node's boot disk.
  // GKE Autopilot is the reason it is set: there a container that asks for
  // none gets 1 GiB, request and limit, and a pod that writes more is
  // evicted ("Pod ephemeral local storage usage exceeds the total limit of
  // containers"), a `pip install torch` included. Autopilot makes the limit
  // equal to the request and caps a pod at 10 GiB over all its containers
  // (the sidecars get its default 1 GiB each), so 4 GiB leaves room; 8 GiB
  // is the most a box with [idle] or [schedule] (three containers) may ask.
  scratchStorage:: '4Gi',

  // Time for Jupyter to stop its kernels and for tailscaled to log out of
  // the coordination server cleanly (containerboot allows itself 25s).
  terminationGracePeriodSeconds:: 60,
  // On Spot VMs (box.spot), what a preempted pod actually gets: Compute
  // Engine stops a Spot VM 30 seconds after its preemption notice, and GKE's
  // graceful node shutdown gives the first 15 of them to ordinary pods and
  // the last 15 to system pods (GKE docs, "Spot VMs", "Termination and
  // graceful shutdown of Spot VMs"). A longer period is cut at 15 seconds
  // anyway; saying so keeps every stop of the box (a rollout too) as short
  // as the one that matters. A node pool whose graceful termination was
  // extended (GKE 1.35.0-gke.1171000 and later, up to 120 s) can override it.
  spotTerminationGracePeriodSeconds:: 15,

  // Old pod templates the StatefulSet keeps as ControllerRevisions, besides
  // those in use (the controller never deletes the current and update
  // revisions, nor any a pod runs: truncateHistory in kubernetes'
  // pkg/controller/statefulset/stateful_set_control.go). Each is a copy of the
  // pod template, about 5 KB; at the API default of 10, ten template changes
  // (a script or image update each) leave ~50 KB a box in etcd, 500 MB at
  // 10,000 boxes. Two keep `kubectl rollout undo` working; Git is the history.
  revisionHistoryLimit:: 2,

  // Shared memory (box.shm): a memory-backed emptyDir over the runtime's
  // 64 MiB /dev/shm, which PyTorch's DataLoader workers outgrow.
  shmMountPath:: '/dev/shm',

  // The scripts every box runs, shipped once per namespace in the scripts
  // ConfigMap (see `scripts` below), not in each box's own ConfigMap.
  files:: {
    'start.sh': importstr 'devbox-gen/start.sh',
    sshd_config: importstr 'devbox-gen/sshd_config',
    'profile.sh': importstr 'devbox-gen/profile.sh',
  },

  // Idle auto-stop and working hours (box.idle, box.schedule; docs/guide.md,
  // "Idle boxes and working hours"). idle.py, in the devbox container, sees
  // the activity: SSH traffic, Jupyter, CPU, GPU, a hold. It cannot stop the
  // box: the devbox container has no Kubernetes token, because everything in
  // it is the person's. When it asks, by writing a file to an emptyDir they
  // share, idle-stop.sh in the `idle` container, which has the token, scales
  // the StatefulSet to zero through its scale subresource, the one request
  // the box's idle Role allows.
  idle:: {
    // How often idle.py looks.
    intervalSeconds: 60,
    // A new SSH connection counts as activity for this long; after that only
    // traffic does: more than sshBytesPerMinute from the client in a minute.
    // Below it are keepalives (OpenSSH's ServerAliveInterval, VS Code's own
    // every 5 seconds), which an idle but connected editor sends forever.
    sshGraceSeconds: 900,
    sshBytesPerMinute: 4096,
    // A process above this share of one CPU over an interval is working
    // (training, a build), with or without anyone connected.
    cpuPercent: 10,
    // nvidia-smi's utilization.gpu, where the image has nvidia-smi.
    gpuPercent: 5,
    // The emptyDir both containers mount: idle.py writes its status (`cat
    // /run/devbox/idle` over ssh) and the stop request there.
    statusDir: '/run/devbox',
    // Who changed spec.replicas, in the StatefulSet's managedFields.
    fieldManager: 'devbox-gen-idle',
    scheduleFieldManager: 'devbox-gen-schedule',
    // The idle container: a sleeping shell that runs curl once.
    resources: { cpu: '20m', memory: '32Mi' },
    // The uid of the wake CronJob's pod.
    wakeUid: 65532,
  },
  idleFiles:: {
    'idle.py': importstr 'devbox-gen/idle.py',
    'idle-stop.sh': importstr 'devbox-gen/idle-stop.sh',
  },

  // The shared scripts: one immutable ConfigMap per namespace, named by its
  // content, which every box mounts beside its own ConfigMap. The name is
  // the whole review story: a bundle names exactly the scripts it runs, a
  // script change is a new object (reviewed once, not once per user) and a
  // new name in every pod template (so every box restarts onto it), and an
  // old pod keeps finding the version it started with. devbox-gen writes it
  // once into out/_gitops/namespace/<cluster>/, whatever the number of boxes
  // (the `devbox-gen.dev/scope` annotation), and checks that the name is the
  // content's: the first 10 hex digits of the sha256 of each key, NUL, value,
  // NUL, in key order. Change the scripts through `files` and `idleFiles`
  // above; they flow into both. A field of the library, so jsonnet hashes
  // the scripts once per build thread, not once per box.
  scripts:: {
    data: $.files + $.idleFiles,
    hash: std.substr(std.sha256(std.join('', [
      key + '\u0000' + self.data[key] + '\u0000'
      for key in std.objectFields(self.data)
    ])), 0, 10),
    name: 'devbox-scripts-' + self.hash,
  },

  // ---------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------

  // Object names. They depend on the user's name only, so no other change
  // to a user file renames (that is, deletes and recreates) an object; the
  // home volume's name in particular must never change (docs/design.md, rule 1).
  names(box):: {
    serviceAccount: box.name,
    configMap: box.name + '-devbox',
    homeVolume: box.name + '-home',
    // tailscaled's state (the node key: the box's tailnet identity), written
    // by the sidecar only. Every suffix keeps a 52-character name within 63.
    tailscaleState: box.name + '-tailnet',
    // The Role and RoleBinding that let the sidecar read and write that one
    // Secret.
    tailscaleRole: box.name + '-tailscale',
    statefulSet: box.name,
    // The Role and RoleBinding that let the idle container scale this box.
    idleRole: box.name + '-idle',
    // The CronJob that starts the box when working hours begin.
    wakeCronJob: box.name + '-wake',
    // The Role and RoleBinding of the box's owner ([owners] in devbox.toml).
    ownerRole: box.name + '-owner',
    service: box.name,
    networkPolicy: box.name,
    pod: box.name + '-0',
  },

  // The StatefulSet's selector. It is immutable: never add labels here, or
  // every existing StatefulSet needs deleting before it can be applied.
  selectorLabels(box):: {
    'app.kubernetes.io/name': 'devbox',
    'app.kubernetes.io/instance': box.name,
  },

  // Labels of every object; `component` says which part of the box it is.
  labels(box, component):: $.selectorLabels(box) {
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': 'devbox-gen',
  },

  // Annotations of every object: who owns it and which file it comes from.
  annotations(box):: {
    'devbox-gen.dev/owner': box.email,
    'devbox-gen.dev/source': box.source,
  },

  // No object carries an Argo CD sync wave. Within one wave Argo CD applies
  // kinds in a fixed order (ServiceAccount, Secret, ConfigMap, PVC, Role,
  // RoleBinding, Service, StatefulSet, ...), which already creates what the
  // pod needs first. An earlier wave for the home volume would deadlock: a
  // PVC whose StorageClass binds WaitForFirstConsumer (GKE's standard-rwo and
  // premium-rwo, most CSI classes) stays Pending, which Argo CD counts as
  // Progressing, until a pod uses it, and the next wave starts only once the
  // earlier one is Healthy (argoproj/argo-cd#12840).

  // metadata of a namespaced object of this box.
  metadata(box, name, component, extraAnnotations={}):: {
    name: name,
    namespace: box.namespace,
    labels: $.labels(box, component),
    annotations: $.annotations(box) + extraAnnotations,
  },

  // Whether the box stops by itself or starts with its working hours. Then
  // the cluster, not Git, decides whether its pod runs; `state = "stopped"`
  // still wins: a stopped box has neither.
  autostops(box):: box.state == 'running' && (box.idle.after_seconds != null || box.schedule != null),

  // The policy idle.py reads, re-read on every look: the kubelet updates the
  // mounted ConfigMap in place, so a new window or new hours restart nothing.
  idlePolicy(box):: {
    after_seconds: box.idle.after_seconds,
    schedule: if box.schedule == null then null else {
      timezone: box.schedule.timezone,
      days: box.schedule.days,
      start: box.schedule.start,
      stop: box.schedule.stop,
    },
    interval_seconds: $.idle.intervalSeconds,
    ssh: { port: $.sshPort, grace_seconds: $.idle.sshGraceSeconds, bytes_per_minute: $.idle.sshBytesPerMinute },
    jupyter: { port: $.jupyterPort },
    cpu_percent: $.idle.cpuPercent,
    gpu_percent: $.idle.gpuPercent,
  },

  // Whether an image reference is pinned by digest.
  pinnedByDigest(image):: std.length(std.findSubstr('@sha256:', image)) > 0,

  // The same fields, hidden: present for mix-ins, absent from the output.
  // Fields hidden already (the optional components a box lacks) stay
  // hidden and present too: std.objectFieldsAll, not std.objectFields.
  hide(obj):: std.foldl(function(acc, k) acc { [k]:: obj[k] }, std.objectFieldsAll(obj), {}),

  // A container securityContext for a container that needs nothing: not
  // root, no privilege escalation, no capabilities, read-only root
  // filesystem (writable paths are emptyDirs or the home volume).
  restrictedSecurityContext:: {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: true,
    seccompProfile: { type: 'RuntimeDefault' },
  },

  // ---------------------------------------------------------------------------
  // Components
  // ---------------------------------------------------------------------------

  // The box's identity towards the Kubernetes API. Its only permission is
  // the tailscale sidecar's Role on the box's own state Secret, and its
  // token is never automounted: the pod projects one into the sidecar only,
  // so nothing the box's user runs can use it.
  serviceAccount(box):: {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: $.metadata(box, $.names(box).serviceAccount, 'service-account'),
    automountServiceAccountToken: false,
  },

  // tailscaled's state, in a Secret instead of on the home volume, which the
  // box's user can read: the node key in it is a tagged tailnet identity
  // that would outlive the box. devbox-gen emits it empty, and never any
  // data: containerboot (TS_KUBE_SECRET) writes the state into it. Emitting
  // it means the sidecar needs no `create` on Secrets (which RBAC cannot
  // limit to one name), and archiving or removing the box prunes it, so the
  // node key is gone with the box.
  tailscaleState(box):: {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: $.metadata(box, $.names(box).tailscaleState, 'tailnet'),
    type: 'Opaque',
  },

  // What containerboot needs with TS_KUBE_SECRET, and nothing more: read and
  // write the box's own state Secret, by name (tailscale's docs/k8s/role.yaml
  // without its `create`, which RBAC cannot limit to one name), and record
  // events about the pod.
  tailscaleRole(box):: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: $.metadata(box, $.names(box).tailscaleRole, 'tailscale'),
    rules: [
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: [$.names(box).tailscaleState],
        verbs: ['get', 'update', 'patch'],
      },
      {
        apiGroups: [''],
        resources: ['events'],
        verbs: ['create', 'patch', 'get'],
      },
    ],
  },

  tailscaleRoleBinding(box):: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: $.metadata(box, $.names(box).tailscaleRole, 'tailscale'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: $.names(box).tailscaleRole },
    subjects: [{ kind: 'ServiceAccount', name: $.names(box).serviceAccount, namespace: box.namespace }],
  },

  // What is the box's own: public keys (reviewed in the pull request), the
  // sidecar's extra arguments and the idle policy. Not immutable: the kubelet
  // updates the mounted files in place, which is how key changes reach a
  // running box without a restart.
  configMap(box):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: $.metadata(box, $.names(box).configMap, 'config'),
    data: {
      authorized_keys: std.join('', [key + '\n' for key in box.ssh.authorized_keys]),
      // Read by the sidecar at its start (an env valueFrom), so changing the
      // tags restarts nothing: tailscale applies --advertise-tags only when
      // the node first logs in (TS_AUTH_ONCE); `devbox-gen diff` says how to
      // retag a running node.
      'tailscale-extra-args': $.tailscaleExtraArgs(box),
    } + (
      if $.autostops(box) then { 'idle.json': std.manifestJsonEx($.idlePolicy(box), '  ') + '\n' } else {}
    ),
  },

  // The shared scripts (see `scripts`), as this box's namespace gets them.
  // Every box renders the same object; devbox-gen writes it once. Immutable:
  // a content-addressed object never changes, and the kubelet stops watching
  // immutable ConfigMaps, which matters with thousands of pods mounting one.
  // Never pruned, by Argo CD or Flux: a pod that has not restarted yet, or a
  // stopped box started from an older revision, still mounts the version it
  // names after a newer one replaced it in Git.
  scriptsConfigMap(box):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: $.scripts.name,
      namespace: box.namespace,
      labels: {
        'app.kubernetes.io/name': 'devbox',
        'app.kubernetes.io/component': 'scripts',
        'app.kubernetes.io/managed-by': 'devbox-gen',
      },
      annotations: {
        'devbox-gen.dev/scope': 'namespace',
        'argocd.argoproj.io/sync-options': 'Prune=false',
        // An older version left in the cluster does not make the
        // namespace's Application OutOfSync.
        'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
        'kustomize.toolkit.fluxcd.io/prune': 'disabled',
      },
    },
    immutable: true,
    data: $.scripts.data,
  },

  // What the idle container may do with the box's token, besides the
  // sidecar's Role: change this one StatefulSet's replicas through its scale
  // subresource. Not the StatefulSet itself (its pod template could run
  // anything), no other box, no Secret.
  idleRole(box):: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: $.metadata(box, $.names(box).idleRole, 'idle'),
    rules: [{
      apiGroups: ['apps'],
      resources: ['statefulsets/scale'],
      resourceNames: [$.names(box).statefulSet],
      verbs: ['get', 'patch'],
    }],
  },

  idleRoleBinding(box):: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: $.metadata(box, $.names(box).idleRole, 'idle'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: $.names(box).idleRole },
    subjects: [{ kind: 'ServiceAccount', name: $.names(box).serviceAccount, namespace: box.namespace }] + (
      if box.schedule != null then [{ kind: 'ServiceAccount', name: $.names(box).wakeCronJob, namespace: box.namespace }] else []
    ),
  },

  // The wake CronJob's script: scales the StatefulSet to one replica
  // through the scale subresource, as `fieldManager`, with the token of the
  // job's ServiceAccount. The token goes to curl on stdin (`--header @-`),
  // never in its arguments, where `ps` in the pod would show it.
  // KUBERNETES_SERVICE_HOST and _PORT are set in every container, service
  // links or not; an IPv6 address needs its brackets.
  wakeScript(box)::
    local api = $.serviceAccountTokenPath;
    std.join('\n', [
      'set -eu',
      'host="$KUBERNETES_SERVICE_HOST"',
      'case "$host" in *:*) host="[$host]" ;; esac',
      'printf \'Authorization: Bearer %%s\\n\' "$(cat %s/token)" |' % api,
      '  curl --silent --show-error --fail-with-body --max-time 30 --retry 5 --retry-all-errors \\',
      '    --cacert %s/ca.crt --header @- \\' % api,
      "    --header 'Content-Type: application/merge-patch+json' --header 'Accept: application/json' \\",
      "    --request PATCH --data '%s' \\" % std.manifestJsonMinified({ spec: { replicas: 1 } }),
      '    "https://$host:$KUBERNETES_SERVICE_PORT/apis/apps/v1/namespaces/%s/statefulsets/%s/scale?fieldManager=%s"' % [box.namespace, $.names(box).statefulSet, $.idle.scheduleFieldManager],
      '',
    ]),

  // The labels of the wake job's pods: not the box's selector labels, or the
  // box's headless Service would list the job's pod as an endpoint of the
  // box, its NetworkPolicy would apply to it, and `kubectl get pods -l
  // app.kubernetes.io/instance=NAME` would count it as the box.
  wakeJobLabels(box):: $.labels(box, 'schedule') { 'app.kubernetes.io/name': 'devbox-wake' },

  // The wake CronJob's identity: its token can scale the box (the idle
  // Role) and nothing else; the box's own ServiceAccount also reaches the
  // tailnet state Secret.
  wakeServiceAccount(box):: {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: $.metadata(box, $.names(box).wakeCronJob, 'schedule'),
    automountServiceAccountToken: false,
  },

  // Starts the box when its working hours begin (box.schedule), in the
  // schedule's own time zone (the CronJob's timeZone, stable since
  // Kubernetes 1.27). A CronJob, not a controller of ours and not KEDA's
  // cron scaler: KEDA would own replicas for the whole window and undo both
  // an idle stop at lunch and a wake in the evening. Scaling a running box
  // to 1 changes nothing, so a missed or repeated run is harmless.
  wakeCronJob(box):: {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    // checkov reads skips from the CronJob's own annotations only.
    metadata: $.metadata(box, $.names(box).wakeCronJob, 'schedule', (
      if $.pinnedByDigest(box.autostop.image) then {} else
        { 'checkov.io/skip1': 'CKV_K8S_43=the autostop image is pinned by tag in devbox.toml; pin it by @sha256 digest there ([autostop] image) to satisfy this' }
    )),
    spec: {
      schedule: box.schedule.start_cron,
      timeZone: box.schedule.timezone,
      concurrencyPolicy: 'Forbid',
      // A run missed (the controller was down) still counts within the hour.
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        metadata: { labels: $.wakeJobLabels(box) },
        spec: {
          backoffLimit: 3,
          activeDeadlineSeconds: 600,
          ttlSecondsAfterFinished: 86400,
          template: {
            metadata: { labels: $.wakeJobLabels(box) },
            spec: {
              serviceAccountName: $.names(box).wakeCronJob,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              restartPolicy: 'Never',
              // It shares no file with the box, so not the box's uid: the
              // distroless "nonroot" one, clear of any host account. The
              // fsGroup is what lets it read its CA and namespace: the kubelet
              // gives only the token to the runAsUser, and leaves a projected
              // configMap's and downwardAPI's files root's with the volume's
              // 0400, group-readable only for an fsGroup
              // (pkg/volume/projected, "SecurityContext interactions").
              securityContext: {
                runAsNonRoot: true,
                runAsUser: $.idle.wakeUid,
                runAsGroup: $.idle.wakeUid,
                fsGroup: $.idle.wakeUid,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              nodeSelector: { 'kubernetes.io/arch': box.arch },
              [if box.arch == 'arm64' then 'tolerations']:
                [{ key: 'kubernetes.io/arch', operator: 'Equal', value: 'arm64', effect: 'NoSchedule' }],
              containers: [{
                name: 'wake',
                image: box.autostop.image,
                imagePullPolicy: 'Always',
                command: ['/bin/sh', '-c', $.wakeScript(box)],
                resources: { requests: $.idle.resources, limits: $.idle.resources },
                securityContext: $.restrictedSecurityContext,
                volumeMounts: [{ name: 'kube-api', mountPath: $.serviceAccountTokenPath, readOnly: true }],
              }],
              volumes: [$.kubeApiVolume('kube-api')],
            },
          },
        },
      },
    },
  },

  // What the box's owner may do to this box alone, as themselves
  // (devbox.toml's [owners]): scale it (wake it; only for a box that
  // autostops, since Git sets the replicas of any other), read its logs,
  // exec into it: what `devbox-gen wake NAME` prints. `kubectl scale
  // statefulset NAME` reads the StatefulSet and patches its scale; `kubectl
  // logs NAME-0` and `kubectl exec NAME-0` read the pod first. Exec is `create` on pods/exec, and `get` too since
  // kubectl talks WebSocket (Kubernetes 1.31 and later).
  ownerRole(box):: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: $.metadata(box, $.names(box).ownerRole, 'owner'),
    rules: $.ownerRules(box),
  },

  ownerRules(box)::
    local allow(what) = box.owner != null && std.member(box.owner.allow, what);
    local pod = [$.names(box).pod];
    (
      if allow('scale') && $.autostops(box) then [
        { apiGroups: ['apps'], resources: ['statefulsets'], resourceNames: [$.names(box).statefulSet], verbs: ['get'] },
        { apiGroups: ['apps'], resources: ['statefulsets/scale'], resourceNames: [$.names(box).statefulSet], verbs: ['get', 'patch', 'update'] },
      ] else []
    ) + (
      // `kubectl wait pod/NAME-0` after a wake lists and watches with a
      // metadata.name field selector, which RBAC authorizes by resourceNames.
      local wakes = allow('scale') && $.autostops(box);
      if allow('logs') || allow('exec') || wakes then
        [{ apiGroups: [''], resources: ['pods'], resourceNames: pod, verbs: ['get'] + (if wakes then ['list', 'watch'] else []) }]
      else []
    ) + (
      if allow('logs') then [{ apiGroups: [''], resources: ['pods/log'], resourceNames: pod, verbs: ['get'] }] else []
    ) + (
      if allow('exec') then [{ apiGroups: [''], resources: ['pods/exec'], resourceNames: pod, verbs: ['create', 'get'] }] else []
    ),

  ownerRoleBinding(box):: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: $.metadata(box, $.names(box).ownerRole, 'owner'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: $.names(box).ownerRole },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: box.owner.user }],
  },

  // The home directory. A standalone claim rather than a
  // volumeClaimTemplate: the StatefulSet can be deleted and recreated, and
  // the claim resized, without touching the data. Argo CD and Flux are told
  // never to prune or delete it, even when the user file is removed.
  //
  // Argo CD leaves its health out of the Application's: a claim of a
  // WaitForFirstConsumer class (GKE's standard-rwo and premium-rwo, most CSI
  // classes) stays Pending until a pod mounts it, which Argo CD counts as
  // Progressing (gitops-engine pkg/health/health_pvc.go), so a box created
  // stopped, or archived before it ever ran, would keep its Application
  // Progressing for good. While the box runs, the StatefulSet's health already
  // says whether its pod, and so the claim, came up. (The annotation is Argo
  // CD 2.14's; older versions ignore it. Flux's health checks name the
  // StatefulSet only.)
  homeVolume(box):: {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: $.metadata(box, $.names(box).homeVolume, 'home', {
      'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false',
      'argocd.argoproj.io/ignore-healthcheck': 'true',
      'kustomize.toolkit.fluxcd.io/prune': 'disabled',
    }) + {
      labels+: { 'devbox-gen.dev/role': 'home' },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: box.home.size } },
    } + (
      // No storage_class: the cluster's default StorageClass.
      if box.home.storage_class != null then { storageClassName: box.home.storage_class } else {}
    ),
  },

  // The environment of the main container: ours first, then the user's,
  // sorted by name. A user variable of the same name replaces ours (HOME
  // excepted, devbox-gen refuses it), so no name appears twice: duplicates
  // break server-side apply.
  env(box):: (
    local ours = {
      HOME: $.homeDir,
      SSH_AUTH_SOCK: $.agentSocket,
      DEVBOX_NAME: box.name,
    };
    local all = ours + box.env + { HOME: $.homeDir };
    local first = ['HOME', 'SSH_AUTH_SOCK', 'DEVBOX_NAME'];
    [
      { name: name, value: std.toString(all[name]) }
      for name in first + [k for k in std.objectFields(box.env) if !std.objectHas(ours, k)]
    ]
  ),

  // A check that sshd is up and listening on loopback, without connecting
  // to it: every connection, even one closed at once, costs two lines in
  // sshd's log (about 11,500 a day at these periods). sshd's pid is alive
  // and the pod's network namespace has a socket in state LISTEN (0A) on
  // 127.0.0.1 (0100007F, as /proc/net/tcp prints it) and the ssh port, so
  // the kernel completes the handshake of the next connection. An exec probe
  // either way: sshd listens on 127.0.0.1 only, which the kubelet's tcpSocket
  // probe (it dials the pod IP) cannot reach.
  sshProbe:: {
    exec: { command: ['sh', '-c', std.join(' && ', [
      'kill -0 "$(cat %s)"' % $.sshdPidFile,
      "grep -q '^ *[0-9]*: 0100007F:%04X 00000000:0000 0A ' /proc/net/tcp" % $.sshPort,
    ])] },
    timeoutSeconds: 5,
  },

  // Readiness: the box is usable when sshd answers. Failing readiness
  // restarts nothing, it only shows in `kubectl get pods`.
  sshReadinessProbe:: $.sshProbe {
    periodSeconds: 10,
    failureThreshold: 3,
  },
  // Liveness: if sshd has been gone for about three minutes, the box is
  // unreachable and a container restart (start.sh starts sshd again) is the
  // fix. Generous on purpose: a restart also ends the user's Jupyter
  // kernels and shells. Jupyter itself is not probed: it is not what makes
  // the box reachable, and if it exits the container restarts anyway.
  sshLivenessProbe:: $.sshProbe {
    initialDelaySeconds: 30,
    periodSeconds: 30,
    failureThreshold: 6,
  },

  // What follows, down to devboxContainer(box), is the same in every box:
  // fields rather than parts of the functions that use them, so that
  // jsonnet evaluates them once, not once per box.
  devboxPorts:: [
    // Documentation only: both listen on 127.0.0.1 and are reached over
    // the tailnet, through the sidecar.
    { name: 'ssh', containerPort: $.sshPort, protocol: 'TCP' },
    { name: 'jupyter', containerPort: $.jupyterPort, protocol: 'TCP' },
  ],
  // The main container's mounts every box has.
  devboxMounts:: [
    { name: 'home', mountPath: $.homeMountPath },
    { name: 'config', mountPath: $.configMountPath, readOnly: true },
    // A file of the ConfigMap, not the directory: the image's own
    // /etc/profile.d stays. (A subPath mount is not updated in place; the
    // script only reads what start.sh writes on each start.)
    { name: 'config', mountPath: $.profileScriptPath, subPath: 'profile.sh', readOnly: true },
    { name: 'ssh-key', mountPath: $.secretsMountPath, readOnly: true },
    // The root filesystem is read-only: sshd's log and pid file, the agent
    // socket and everything else temporary go here.
    { name: 'tmp', mountPath: '/tmp' },
    { name: 'var-tmp', mountPath: '/var/tmp' },
  ],

  // The developer's container: sshd and Jupyter, started by start.sh.
  devboxContainer(box):: {
    name: 'devbox',
    image: box.image,
    // Always: a tag moved to a rebuilt image reaches the box on its next
    // restart (and checkov's CKV_K8S_15 asks for it).
    imagePullPolicy: 'Always',
    command: $.command,
    args: $.jupyterArgs,
    // No workingDir: the runtime would create a missing one as root, and a
    // root-owned home breaks ~/.ssh; start.sh creates $HOME and cd's there.
    env: $.env(box),
    ports: $.devboxPorts,
    // Requests equal limits: the box gets what its user file says, always
    // (Guaranteed QoS, never the first to be evicted; the class looks at CPU
    // and memory only). Disk is requested, not limited: see scratchStorage.
    resources: (
      local gpu = if box.gpu != null then { 'nvidia.com/gpu': std.toString(box.gpu.count) } else {};
      local r = { cpu: box.resources.cpu, memory: box.resources.memory } + gpu;
      { requests: r { 'ephemeral-storage': $.scratchStorage }, limits: r }
    ),
    readinessProbe: $.sshReadinessProbe,
    livenessProbe: $.sshLivenessProbe,
    securityContext: $.restrictedSecurityContext,
    volumeMounts: $.devboxMounts + (
      if $.autostops(box) then [{ name: 'idle-status', mountPath: $.idle.statusDir }] else []
    ) + (
      if box.shm != null then [{ name: 'shm', mountPath: $.shmMountPath }] else []
    ) + [
      // Read-only here as on the volume, so nothing in the box can write to
      // what every box that lists the dataset reads.
      { name: $.datasetVolumeName(dataset), mountPath: dataset.mount, readOnly: true }
      for dataset in box.datasets
    ],
  },

  // The pod volume of one of box.datasets.
  datasetVolumeName(dataset):: 'dataset-' + dataset.name,

  // tailscale's containerboot, joining the box to the tailnet.
  tailscaleContainer(box):: {
    name: 'tailscale',
    image: box.tailscale.image,
    imagePullPolicy: 'Always',
    env: [
      // Userspace networking: no NET_ADMIN and no /dev/net/tun. Incoming
      // tailnet connections are forwarded to 127.0.0.1 of the pod, where
      // sshd and Jupyter listen.
      { name: 'TS_USERSPACE', value: 'true' },
      { name: 'TS_HOSTNAME', value: box.tailscale.hostname },
    ] + $.tailscaleEnv + [
      // From the ConfigMap: see configMap's `tailscale-extra-args`.
      {
        name: 'TS_EXTRA_ARGS',
        valueFrom: { configMapKeyRef: { name: $.names(box).configMap, key: 'tailscale-extra-args' } },
      },
    ],
    ports: $.tailscaleSidecar.ports,
    resources: $.tailscaleSidecar.resources,
    readinessProbe: $.tailscaleSidecar.readinessProbe,
    livenessProbe: $.tailscaleSidecar.livenessProbe,
    securityContext: $.restrictedSecurityContext,
    volumeMounts: $.tailscaleSidecar.volumeMounts,
  },

  // The sidecar's variables that are the same in every box, and its other
  // settings: fields rather than parts of tailscaleContainer(box), so that
  // jsonnet evaluates them once, not once per box.
  tailscaleEnv:: [
    // `file:` makes `tailscale up` read the key from the mounted Secret,
    // so the key is never in an environment variable (checkov CKV_K8S_35).
    { name: 'TS_AUTHKEY', value: 'file:' + $.tailscaleAuthMountPath + '/' + $.tailscaleAuthKeyKey },
    // Log in only when the state holds no node key yet; restarts reuse
    // the node, and an expired or revoked auth key only matters once.
    { name: 'TS_AUTH_ONCE', value: 'true' },
    // State in the box's own Secret, through the token projected into this
    // container only: the box's user, who can read the home volume, never
    // sees the node key.
    // containerboot checks get, update and patch on it at start, writes
    // with PATCH, and needs `create` only if the Secret is missing, which
    // the bundle rules out. Besides tailscaled's own keys it records
    // device_id, device_fqdn and device_ips there: what the runbooks use.
    // The Secret's name comes from the pod's annotation (tailnetStateAnnotation),
    // not a literal: linters flag every variable named *SECRET* that has a
    // literal value (kube-linter's env-var-secret, Polaris'
    // sensitiveContainerEnvVar), and this one holds a name, not a secret.
    {
      name: 'TS_KUBE_SECRET',
      valueFrom: { fieldRef: { fieldPath: "metadata.annotations['%s']" % $.tailnetStateAnnotation } },
    },
    // With TS_KUBE_SECRET, TS_STATE_DIR only holds certificates and
    // Taildrop files; unset, it is /tmp, an emptyDir of this container.
    // Logs' state likewise, instead of trying the read-only root.
    { name: 'TS_LOGS_DIR', value: '/tmp' },
    // For the events containerboot records on the pod (optional: without
    // them it logs a line and goes on).
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
    // The CLI's default socket path, so `kubectl exec -c tailscale --
    // tailscale status` works without --socket.
    { name: 'TS_SOCKET', value: '/var/run/tailscale/tailscaled.sock' },
    // A fixed WireGuard port, admitted by the NetworkPolicy.
    { name: 'TS_TAILSCALED_EXTRA_ARGS', value: '--port=' + $.wireguardPort },
    { name: 'TS_SOCKS5_SERVER', value: $.tailnetProxyAddress },
    { name: 'TS_OUTBOUND_HTTP_PROXY_LISTEN', value: $.tailnetProxyAddress },
    // /healthz answers 200 once the node has a tailnet address.
    { name: 'TS_ENABLE_HEALTH_CHECK', value: 'true' },
    { name: 'TS_LOCAL_ADDR_PORT', value: '[::]:' + $.tailscaleHealthPort },
  ],

  tailscaleSidecar:: {
    ports: [
      { name: 'wireguard', containerPort: $.wireguardPort, protocol: 'UDP' },
      { name: 'ts-health', containerPort: $.tailscaleHealthPort, protocol: 'TCP' },
    ],
    resources: { requests: $.tailscaleResources, limits: $.tailscaleResources },
    // Readiness: the box is on the tailnet (shown as 1/2 in `kubectl get
    // pods` when it is not, e.g. while the auth key is missing or expired).
    readinessProbe: {
      httpGet: { path: '/healthz', port: 'ts-health' },
      periodSeconds: 10,
      failureThreshold: 3,
    },
    // Liveness: off the tailnet for five minutes. Restarting the sidecar is
    // cheap (the node and its key survive in the state Secret, TS_AUTH_ONCE
    // skips the login) and leaves the devbox container alone, and it is the
    // only automatic remedy for a wedged tailscaled. Not sooner: a short
    // coordination-server outage must not restart anything.
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'ts-health' },
      initialDelaySeconds: 60,
      periodSeconds: 30,
      failureThreshold: 10,
    },
    volumeMounts: [
      { name: 'tailscale-api', mountPath: $.serviceAccountTokenPath, readOnly: true },
      { name: 'tailscale-auth', mountPath: $.tailscaleAuthMountPath, readOnly: true },
      { name: 'tailscale-run', mountPath: '/var/run/tailscale' },
      { name: 'tailscale-tmp', mountPath: '/tmp' },
    ],
  },

  // tailscaled's arguments beyond containerboot's own.
  tailscaleExtraArgs(box)::
    if std.length(box.tailscale.tags) > 0 then '--advertise-tags=' + std.join(',', box.tailscale.tags) else '',

  // Tolerations for the nodes the box's arch and GPU select.
  tolerations(box)::
    (
      // GKE taints its Arm nodes kubernetes.io/arch=arm64:NoSchedule.
      if box.arch == 'arm64' then
        [{ key: 'kubernetes.io/arch', operator: 'Equal', value: 'arm64', effect: 'NoSchedule' }]
      else []
    ) + (
      // GPU nodes are tainted so that only pods asking for a GPU land there.
      if box.gpu != null then
        [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]
      else []
    ) + (
      // Spot node pools are tainted cloud.google.com/gke-spot=true:NoSchedule
      // (as GKE advises for Standard clusters, and Autopilot does itself), so
      // that only pods that accept preemption land there.
      if box.spot then
        [{ key: 'cloud.google.com/gke-spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' }]
      else []
    ),

  // The node labels the box's pod selects: its architecture, its GPU (and
  // how the GPU is shared), Spot VMs.
  nodeSelector(box):: { 'kubernetes.io/arch': box.arch } + (
    if box.gpu != null then { 'cloud.google.com/gke-accelerator': box.gpu.type } else {}
  ) + (
    // GKE labels the nodes of a pool created with a GPU sharing strategy;
    // a container there asks for one nvidia.com/gpu, a share of the GPU.
    if box.gpu != null && box.gpu.sharing != null then
      { 'cloud.google.com/gke-gpu-sharing-strategy': box.gpu.sharing } + (
        if box.gpu.clients != null then
          { 'cloud.google.com/gke-max-shared-clients-per-gpu': std.toString(box.gpu.clients) }
        else {}
      )
    else {}
  ) + (
    // What cost reports and people read to tell a Spot box: keep this label.
    if box.spot then { 'cloud.google.com/gke-spot': 'true' } else {}
  ),

  podSpec(box):: {
    serviceAccountName: $.names(box).serviceAccount,
    automountServiceAccountToken: false,
    // No environment variables for every Service in the namespace (one per
    // devbox would pile up in everyone's shell).
    enableServiceLinks: false,
    terminationGracePeriodSeconds:
      if box.spot then $.spotTerminationGracePeriodSeconds else $.terminationGracePeriodSeconds,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: box.runtime.uid,
      runAsGroup: box.runtime.gid,
      // Makes the home volume writable by the user. OnRootMismatch, not
      // Always: Always would re-chown the whole home on every start (slow on
      // a big volume) and make ~/.ssh group-writable, which sshd's
      // StrictModes refuses.
      fsGroup: box.runtime.gid,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
    nodeSelector: $.nodeSelector(box),
    [if std.length($.tolerations(box)) > 0 then 'tolerations']: $.tolerations(box),
    containers: [$.devboxContainer(box), $.tailscaleContainer(box)]
                + (if $.autostops(box) then [$.idleContainer(box)] else []),
    volumes: [
      { name: 'home', persistentVolumeClaim: { claimName: $.names(box).homeVolume } },
      // The box's own ConfigMap and the shared scripts, as one directory.
      // 0444 (292): readable, and start.sh is run through bash, not executed.
      {
        name: 'config',
        projected: {
          defaultMode: 292,
          sources: [
            { configMap: { name: $.names(box).configMap } },
            { configMap: { name: $.scripts.name } },
          ],
        },
      },
      // 0400 (256); with fsGroup the files become root-owned 0440, readable
      // by the user's group. Optional, so a box starts before its Secret
      // exists; start.sh loads the key once it appears.
      { name: 'ssh-key', secret: { secretName: box.ssh.key_secret, defaultMode: 256, optional: true } },
      // Optional too: once the node is logged in (state in its Secret)
      // the auth key is not needed, and a rotated-away Secret must not keep
      // the box from starting.
      { name: 'tailscale-auth', secret: { secretName: box.tailscale.auth_key_secret, defaultMode: 256, optional: true } },
    ] + $.scratchVolumes + (
      if $.autostops(box) then $.idleVolumes else []
    ) + (
      // Its pages are charged to the container's memory limit, which
      // validation keeps big enough; sizeLimit caps the tmpfs.
      if box.shm != null then [{ name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: box.shm } }] else []
    ) + [
      // readOnly on the volume, not only on the mount: the kubelet then
      // skips changing the files' group to fsGroup (its CSI mounter applies
      // fsGroup only to volumes that are not read-only: supportsFSGroup in
      // pkg/volume/csi/csi_mounter.go). On a shared dataset that change
      // would rewrite every file at each start of every box, or fail on a
      // read-only file system (kubeflow#5676: "chgrp: ... Read-only file
      // system" on a ReadOnlyMany claim).
      { name: $.datasetVolumeName(dataset), persistentVolumeClaim: { claimName: dataset.claim, readOnly: true } }
      for dataset in box.datasets
    ],
  },

  // The pod's volumes that are the same in every box (a field, evaluated
  // once).
  scratchVolumes:: [
    // What automountServiceAccountToken would mount, for the tailscale
    // sidecar alone.
    $.kubeApiVolume('tailscale-api'),
    { name: 'tmp', emptyDir: {} },
    { name: 'var-tmp', emptyDir: {} },
    { name: 'tailscale-run', emptyDir: { sizeLimit: '16Mi' } },
    // Room for tailscaled's log buffer (TS_LOGS_DIR): two files of up to
    // 50 MiB each (logtail/filch) while logs cannot be uploaded, as behind
    // an egress proxy that blocks log.tailscale.com. Over its sizeLimit an
    // emptyDir gets the whole pod evicted, the person's sessions with it.
    { name: 'tailscale-tmp', emptyDir: { sizeLimit: '256Mi' } },
  ],
  // A few status files on a tmpfs; the idle container's token.
  idleVolumes:: [
    { name: 'idle-status', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
    $.kubeApiVolume('idle-api'),
  ],

  // What automountServiceAccountToken would mount, as a volume for the
  // containers that need it: a short-lived token the kubelet rotates, the
  // cluster's CA and the namespace.
  kubeApiVolume(name):: {
    name: name,
    projected: {
      defaultMode: 256,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: $.serviceAccountTokenSeconds } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  },

  // The idle container: waits for idle.py's stop request and scales the box
  // to zero (idle-stop.sh). A separate container because the token must not
  // be where the person's programs run; the devbox image is not used for it,
  // so that nothing of the person's choosing runs next to a token.
  idleContainer(box):: {
    name: 'idle',
    image: box.autostop.image,
    imagePullPolicy: 'Always',
    command: ['/bin/sh', $.configMountPath + '/idle-stop.sh'],
    env: [
      { name: 'DEVBOX_NAME', value: $.names(box).statefulSet },
      { name: 'DEVBOX_IDLE_STATUS_DIR', value: $.idle.statusDir },
      { name: 'DEVBOX_IDLE_FIELD_MANAGER', value: $.idle.fieldManager },
    ],
    resources: $.idleContainerSettings.resources,
    readinessProbe: $.idleContainerSettings.readinessProbe,
    securityContext: $.restrictedSecurityContext,
    volumeMounts: $.idleContainerSettings.volumeMounts,
  },
  // The idle container's settings that are the same in every box (a field,
  // evaluated once).
  idleContainerSettings:: {
    resources: { requests: $.idle.resources, limits: $.idle.resources },
    // Ready once it could stop the box: its token and the cluster's CA are
    // there to read.
    readinessProbe: {
      exec: { command: ['/bin/sh', '-c', 'test -r %(d)s/token && test -r %(d)s/ca.crt' % { d: $.serviceAccountTokenPath }] },
      periodSeconds: 60,
    },
    volumeMounts: [
      { name: 'config', mountPath: $.configMountPath, readOnly: true },
      { name: 'idle-status', mountPath: $.idle.statusDir, readOnly: true },
      { name: 'idle-api', mountPath: $.serviceAccountTokenPath, readOnly: true },
    ],
  },

  // checkov skips (checkov.io/skipN annotations), each with its reason.
  // Only what the box's own settings make unavoidable. checkov splits each
  // value at '=', so a reason must not contain one.
  checkovSkips(box):: (
    local images = [box.image, box.tailscale.image] + (if $.autostops(box) then [box.autostop.image] else []);
    (
      if !std.all([$.pinnedByDigest(i) for i in images]) then
        ['CKV_K8S_43=images are pinned by tag in users/*.toml and devbox.toml; pin them by @sha256 digest there to satisfy this']
      else []
    ) + (
      if $.autostops(box) then
        ['CKV_K8S_8=the idle container is a shell loop waiting for a file; a restart would mend nothing a probe could see']
      else []
    ) + (
      if box.runtime.uid < 10000 then
        ['CKV_K8S_40=the image\'s jupyter user has uid %d, and sshd must run as that user; use an image whose user has a uid of 10000 or more to satisfy this' % box.runtime.uid]
      else []
    )
  ),

  // A box's working hours, on its StatefulSet: `mon,tue,wed,thu,fri 08:00-19:00
  // Europe/Berlin`. What `devbox-gen diff` reads to state what the box costs if it runs only
  // then (the hours are the least it runs: the box is kept running in them). On the
  // StatefulSet's own metadata, not its pod template's, so new hours restart nothing.
  workingHoursAnnotation:: 'devbox-gen.dev/working-hours',
  workingHours(box):: '%s %s-%s %s' % [std.join(',', box.schedule.days), box.schedule.start, box.schedule.stop, box.schedule.timezone],

  // The pod's annotation that names its tailnet state Secret, for the sidecar's
  // TS_KUBE_SECRET (a fieldRef: see tailscaleContainer).
  tailnetStateAnnotation:: 'devbox-gen.dev/tailnet-state',

  statefulSet(box):: {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    local skips = $.checkovSkips(box),
    metadata: $.metadata(box, $.names(box).statefulSet, 'workload', {
      ['checkov.io/skip%d' % (i + 1)]: skips[i]
      for i in std.range(0, std.length(skips) - 1)
    } + (
      if $.autostops(box) && box.schedule != null then { [$.workingHoursAnnotation]: $.workingHours(box) } else {}
    )),
    spec: {
      // stopped: no pod, no compute; the home volume and everything else stay.
      // A box that autostops has no replicas here: idle-stop.sh, the wake
      // CronJob and its owner set them, and Git must not set them back. Argo
      // CD and Flux then leave the field alone (a field the manifest does not
      // set is not drift, to a three-way or a server-side apply), and a new
      // StatefulSet starts with the API's default of 1. The first sync
      // without the field sets it to 1 once, if a box was stopped by hand.
      [if !$.autostops(box) then 'replicas']: if box.state == 'running' then 1 else 0,
      // Parallel, not the default OrderedReady: OrderedReady never replaces a
      // pod that is not Running and Ready (kubernetes/kubernetes#67250), so a
      // bad image tag or a missing tailscale key would leave the box stuck on
      // the broken revision even after the change is reverted. With one
      // replica there is no order to keep. Immutable: see CHANGELOG.md for
      // moving an existing StatefulSet.
      podManagementPolicy: 'Parallel',
      revisionHistoryLimit: $.revisionHistoryLimit,
      serviceName: $.names(box).service,
      selector: { matchLabels: $.selectorLabels(box) },
      template: {
        metadata: {
          labels: $.labels(box, 'workload'),
          annotations: { [$.tailnetStateAnnotation]: $.names(box).tailscaleState },
        },
        spec: $.podSpec(box),
      },
    },
  },

  // The StatefulSet's governing Service. Headless and without ports: it
  // gives the pod a stable DNS name but makes nothing reachable; every
  // connection arrives over the tailnet.
  service(box):: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: $.metadata(box, $.names(box).service, 'service'),
    spec: {
      clusterIP: 'None',
      selector: $.selectorLabels(box),
    },
  },

  // Ingress: only direct WireGuard connections to tailscaled; sshd and
  // Jupyter listen on loopback and arrive through the tailnet.
  //
  // Egress: everything but the cloud metadata server (`[network] metadata`,
  // default "block"). A devbox is a workstation that needs the internet
  // (package registries, GitHub, the tailnet's coordination and DERP
  // servers) and in-cluster services; a list of allowed destinations would
  // be both incomplete and bypassable through the tailnet. The metadata
  // server is the exception: without Workload Identity it gives any pod the
  // node's service-account token. Written to mean the same on every CNI:
  // ipBlocks for addresses outside the cluster (on Cilium, GKE Dataplane V2,
  // an ipBlock does not match pods), a namespaceSelector for every pod, and
  // DNS on port 53 to any destination (kube-dns pods, NodeLocal DNSCache).
  // With "allow" (for Workload Identity, whose GKE metadata server answers
  // on the same address) egress is not restricted at all.
  networkPolicy(box):: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: $.metadata(box, $.names(box).networkPolicy, 'network-policy'),
    spec: {
      podSelector: { matchLabels: $.selectorLabels(box) },
      policyTypes: ['Ingress'] + (if box.network.metadata == 'block' then ['Egress'] else []),
      ingress: $.networkIngress,
      [if box.network.metadata == 'block' then 'egress']: $.egressBlockingMetadata,
    },
  },
  // The rules, fields so that jsonnet evaluates them once, not once per box.
  networkIngress:: [{ ports: [{ protocol: 'UDP', port: $.wireguardPort }] }],
  egressBlockingMetadata:: [
    { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
    {
      to: [
        { ipBlock: { cidr: '0.0.0.0/0', except: [$.metadataServerCidr] } },
        { ipBlock: { cidr: '::/0', except: $.metadataServerCidrsIPv6 } },
        { namespaceSelector: {} },
      ],
    },
  ],

  // ---------------------------------------------------------------------------
  // The bundle
  // ---------------------------------------------------------------------------

  bundle(box):: (
    // Components that only some boxes have are hidden in the others, so a
    // mix-in that patches one works for every box.
    local optional(present, components) = if present then components else $.hide(components);
    local workload = {
      serviceAccount: $.serviceAccount(box),
      tailscaleState: $.tailscaleState(box),
      tailscaleRole: $.tailscaleRole(box),
      tailscaleRoleBinding: $.tailscaleRoleBinding(box),
      configMap: $.configMap(box),
      scripts: $.scriptsConfigMap(box),
      statefulSet: $.statefulSet(box),
      service: $.service(box),
      networkPolicy: $.networkPolicy(box),
    } + optional($.autostops(box), {
      idleRole: $.idleRole(box),
      idleRoleBinding: $.idleRoleBinding(box),
    }) + optional($.autostops(box) && box.schedule != null, {
      wakeServiceAccount: $.wakeServiceAccount(box),
      wakeCronJob: $.wakeCronJob(box),
    }) + optional(box.state == 'running' && std.length($.ownerRules(box)) > 0, {
      ownerRole: $.ownerRole(box),
      ownerRoleBinding: $.ownerRoleBinding(box),
    });
    { homeVolume: $.homeVolume(box) }
    + if box.state == 'archived' then $.hide(workload) else workload
  ),
}
