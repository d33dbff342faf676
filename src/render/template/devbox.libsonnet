// devbox-gen's Kubernetes library: one developer box = one bundle of objects.
//
//   local devbox = import 'devbox-gen/devbox.libsonnet';
//   function(box) devbox.bundle(box)
//
// `box` is one user's file after validation and defaulting by devbox-gen
// (name, email, state, namespace, image, arch, resources, gpu, home, ssh,
// tailscale, env, runtime; see the default template's header).
//
// bundle(box) returns an object keyed by component:
//   serviceAccount, configMap, homeVolume, statefulSet, service, networkPolicy
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
// Settings below (ports, paths, sidecar resources, files) are fields of this
// object, so they can be overridden before building the bundle:
//
//   local devbox = (import 'devbox-gen/devbox.libsonnet') + {
//     tailscaleResources:: { cpu: '500m', memory: '256Mi' },
//     files+:: { sshd_config: importstr 'my_sshd_config' },
//   };
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
  // Subdirectory of the home volume that holds tailscaled's state (node key):
  // each box keeps its own tailnet identity, across restarts, on its own
  // volume; no Secret shared by all users holds any box's state.
  tailscaleStateSubPath:: '.tailscale',
  configMountPath:: '/etc/devbox',
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
  ],

  // The tailscale sidecar's requests and limits (equal, so the pod keeps the
  // Guaranteed QoS class). Userspace WireGuard is CPU-bound; this is ample
  // for SSH, VS Code and the odd scp of a data set.
  tailscaleResources:: { cpu: '250m', memory: '256Mi' },

  // Time for Jupyter to stop its kernels and for tailscaled to log out of
  // the coordination server cleanly (containerboot allows itself 25s).
  terminationGracePeriodSeconds:: 60,

  // Files shipped in the ConfigMap (besides authorized_keys).
  files:: {
    'start.sh': importstr 'devbox-gen/start.sh',
    sshd_config: importstr 'devbox-gen/sshd_config',
  },

  // ---------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------

  // Object names. They depend on the user's name only, so no other change
  // to a user file renames (that is, deletes and recreates) an object; the
  // home volume's name in particular must never change (DESIGN.md, rule 1).
  names(box):: {
    serviceAccount: box.name,
    configMap: box.name + '-devbox',
    homeVolume: box.name + '-home',
    statefulSet: box.name,
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

  // Argo CD applies lower waves first: the home volume, the ConfigMap and
  // the ServiceAccount exist before the StatefulSet's pod needs them.
  syncWaveFirst:: { 'argocd.argoproj.io/sync-wave': '-1' },

  // metadata of a namespaced object of this box.
  metadata(box, name, component, extraAnnotations={}):: {
    name: name,
    namespace: box.namespace,
    labels: $.labels(box, component),
    annotations: $.annotations(box) + extraAnnotations,
  },

  // Whether an image reference is pinned by digest.
  pinnedByDigest(image):: std.length(std.findSubstr('@sha256:', image)) > 0,

  // Changes whenever the startup script or sshd_config changes, so such a
  // change rolls the pod. authorized_keys is left out on purpose: start.sh
  // picks up key changes in the running pod, and adding a key should not
  // restart anyone's kernels.
  configHash(data):: std.md5(data['start.sh'] + data.sshd_config),

  // The same fields, hidden: present for mix-ins, absent from the output.
  hide(obj):: std.foldl(function(acc, k) acc { [k]:: obj[k] }, std.objectFields(obj), {}),

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

  // Nothing in the pod talks to the Kubernetes API, so no token is mounted;
  // a ServiceAccount of its own still gives the box an identity that RBAC or
  // Workload Identity can be granted to later, one box at a time.
  serviceAccount(box):: {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: $.metadata(box, $.names(box).serviceAccount, 'service-account', $.syncWaveFirst),
    automountServiceAccountToken: false,
  },

  // Public keys (reviewed in the pull request), the startup script and the
  // sshd configuration. Not immutable: the kubelet updates the mounted files
  // in place, which is how key changes reach a running box.
  configMap(box):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: $.metadata(box, $.names(box).configMap, 'config', $.syncWaveFirst),
    data: {
      authorized_keys: std.join('', [key + '\n' for key in box.ssh.authorized_keys]),
    } + $.files,
  },

  // The home directory. A standalone claim rather than a
  // volumeClaimTemplate: the StatefulSet can be deleted and recreated, and
  // the claim resized, without touching the data. Argo CD and Flux are told
  // never to prune or delete it, even when the user file is removed.
  homeVolume(box):: {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: $.metadata(box, $.names(box).homeVolume, 'home', $.syncWaveFirst {
      'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false',
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

  // A check that sshd accepts connections on loopback. It has to be an exec
  // probe: sshd listens on 127.0.0.1 only, which the kubelet's tcpSocket
  // probe (it dials the pod IP) cannot reach. bash's /dev/tcp needs no tool
  // in the image; the connection is closed at once.
  sshProbe:: {
    exec: { command: ['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/' + $.sshPort] },
    timeoutSeconds: 5,
  },

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
    ports: [
      // Documentation only: both listen on 127.0.0.1 and are reached over
      // the tailnet, through the sidecar.
      { name: 'ssh', containerPort: $.sshPort, protocol: 'TCP' },
      { name: 'jupyter', containerPort: $.jupyterPort, protocol: 'TCP' },
    ],
    // Requests equal limits: the box gets what its user file says, always
    // (Guaranteed QoS, never the first to be evicted).
    resources: (
      local gpu = if box.gpu != null then { 'nvidia.com/gpu': std.toString(box.gpu.count) } else {};
      local r = { cpu: box.resources.cpu, memory: box.resources.memory } + gpu;
      { requests: r, limits: r }
    ),
    // Readiness: the box is usable when sshd answers. Failing readiness
    // restarts nothing, it only shows in `kubectl get pods`.
    readinessProbe: $.sshProbe {
      periodSeconds: 10,
      failureThreshold: 3,
    },
    // Liveness: if sshd has been gone for about three minutes, the box is
    // unreachable and a container restart (start.sh starts sshd again) is the
    // fix. Generous on purpose: a restart also ends the user's Jupyter
    // kernels and shells. Jupyter itself is not probed: it is not what makes
    // the box reachable, and if it exits the container restarts anyway.
    livenessProbe: $.sshProbe {
      initialDelaySeconds: 30,
      periodSeconds: 30,
      failureThreshold: 6,
    },
    securityContext: $.restrictedSecurityContext,
    volumeMounts: [
      { name: 'home', mountPath: $.homeMountPath },
      { name: 'config', mountPath: $.configMountPath, readOnly: true },
      { name: 'ssh-key', mountPath: $.secretsMountPath, readOnly: true },
      // The root filesystem is read-only: sshd's log and pid file, the agent
      // socket and everything else temporary go here.
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'var-tmp', mountPath: '/var/tmp' },
    ],
  },

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
      // `file:` makes `tailscale up` read the key from the mounted Secret,
      // so the key is never in an environment variable (checkov CKV_K8S_35).
      { name: 'TS_AUTHKEY', value: 'file:' + $.tailscaleAuthMountPath + '/' + $.tailscaleAuthKeyKey },
      // Log in only when the state holds no node key yet; restarts reuse
      // the node, and an expired or revoked auth key only matters once.
      { name: 'TS_AUTH_ONCE', value: 'true' },
      // State on the box's own home volume, not in a Kubernetes Secret...
      { name: 'TS_STATE_DIR', value: '/var/lib/tailscale' },
      { name: 'TS_KUBE_SECRET', value: '' },
      // ...and no Kubernetes API access at all. containerboot creates its
      // Kubernetes client whenever KUBERNETES_SERVICE_HOST is set, even with
      // TS_KUBE_SECRET empty, and fails without a service-account token
      // (tailscale/tailscale#8188); unsetting it makes containerboot behave
      // as outside Kubernetes.
      { name: 'KUBERNETES_SERVICE_HOST', value: '' },
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
    ] + (
      if std.length(box.tailscale.tags) > 0 then
        [{ name: 'TS_EXTRA_ARGS', value: '--advertise-tags=' + std.join(',', box.tailscale.tags) }]
      else []
    ),
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
    // cheap (the node and its key survive on the home volume, TS_AUTH_ONCE
    // skips the login) and leaves the devbox container alone, and it is the
    // only automatic remedy for a wedged tailscaled. Not sooner: a short
    // coordination-server outage must not restart anything.
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'ts-health' },
      initialDelaySeconds: 60,
      periodSeconds: 30,
      failureThreshold: 10,
    },
    securityContext: $.restrictedSecurityContext,
    volumeMounts: [
      { name: 'home', mountPath: '/var/lib/tailscale', subPath: $.tailscaleStateSubPath },
      { name: 'tailscale-auth', mountPath: $.tailscaleAuthMountPath, readOnly: true },
      { name: 'tailscale-run', mountPath: '/var/run/tailscale' },
      { name: 'tailscale-tmp', mountPath: '/tmp' },
    ],
  },

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
    ),

  podSpec(box):: {
    serviceAccountName: $.names(box).serviceAccount,
    automountServiceAccountToken: false,
    // No environment variables for every Service in the namespace (one per
    // devbox would pile up in everyone's shell).
    enableServiceLinks: false,
    terminationGracePeriodSeconds: $.terminationGracePeriodSeconds,
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
    nodeSelector: { 'kubernetes.io/arch': box.arch } + (
      if box.gpu != null then { 'cloud.google.com/gke-accelerator': box.gpu.type } else {}
    ),
    [if std.length($.tolerations(box)) > 0 then 'tolerations']: $.tolerations(box),
    containers: [$.devboxContainer(box), $.tailscaleContainer(box)],
    volumes: [
      { name: 'home', persistentVolumeClaim: { claimName: $.names(box).homeVolume } },
      // 0444 (292): readable, and start.sh is run through bash, not executed.
      { name: 'config', configMap: { name: $.names(box).configMap, defaultMode: 292 } },
      // 0400 (256); with fsGroup the files become root-owned 0440, readable
      // by the user's group. Optional, so a box starts before its Secret
      // exists; start.sh loads the key once it appears.
      { name: 'ssh-key', secret: { secretName: box.ssh.key_secret, defaultMode: 256, optional: true } },
      // Optional too: once the node is logged in (state on the home volume)
      // the auth key is not needed, and a rotated-away Secret must not keep
      // the box from starting.
      { name: 'tailscale-auth', secret: { secretName: box.tailscale.auth_key_secret, defaultMode: 256, optional: true } },
      { name: 'tmp', emptyDir: {} },
      { name: 'var-tmp', emptyDir: {} },
      { name: 'tailscale-run', emptyDir: { sizeLimit: '16Mi' } },
      { name: 'tailscale-tmp', emptyDir: { sizeLimit: '64Mi' } },
    ],
  },

  // checkov skips (checkov.io/skipN annotations), each with its reason.
  // Only what the box's own settings make unavoidable. checkov splits each
  // value at '=', so a reason must not contain one.
  checkovSkips(box):: (
    local images = [box.image, box.tailscale.image];
    (
      if !std.all([$.pinnedByDigest(i) for i in images]) then
        ['CKV_K8S_43=images are pinned by tag in users/*.toml and devbox.toml; pin them by @sha256 digest there to satisfy this']
      else []
    ) + (
      if box.runtime.uid < 10000 then
        ['CKV_K8S_40=the image\'s jupyter user has uid %d, and sshd must run as that user; use an image whose user has a uid of 10000 or more to satisfy this' % box.runtime.uid]
      else []
    )
  ),

  statefulSet(box):: {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: $.metadata(box, $.names(box).statefulSet, 'workload', {
      ['checkov.io/skip%d' % (i + 1)]: $.checkovSkips(box)[i]
      for i in std.range(0, std.length($.checkovSkips(box)) - 1)
    }),
    spec: {
      // stopped: no pod, no compute; the home volume and everything else stay.
      replicas: if box.state == 'running' then 1 else 0,
      serviceName: $.names(box).service,
      selector: { matchLabels: $.selectorLabels(box) },
      template: {
        metadata: {
          labels: $.labels(box, 'workload'),
          annotations: {
            'devbox-gen.dev/config-hash': $.configHash($.configMap(box).data),
          },
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
  // Jupyter listen on loopback and arrive through the tailnet. Egress is not
  // restricted: a devbox is a workstation that needs the internet (package
  // registries, GitHub, the tailnet's coordination and DERP servers), and a
  // list of allowed destinations would be both incomplete and bypassable
  // through the tailnet.
  networkPolicy(box):: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: $.metadata(box, $.names(box).networkPolicy, 'network-policy'),
    spec: {
      podSelector: { matchLabels: $.selectorLabels(box) },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ protocol: 'UDP', port: $.wireguardPort }] }],
    },
  },

  // ---------------------------------------------------------------------------
  // The bundle
  // ---------------------------------------------------------------------------

  bundle(box):: (
    local workload = {
      local b = self,
      serviceAccount: $.serviceAccount(box),
      configMap: $.configMap(box),
      // The config hash follows the ConfigMap that is actually emitted, so
      // it stays right when a template patches the ConfigMap's files.
      statefulSet: $.statefulSet(box) + {
        spec+: { template+: { metadata+: { annotations+: {
          'devbox-gen.dev/config-hash':
            if std.isObject(b.configMap) && std.objectHas(b.configMap, 'data')
            then $.configHash(b.configMap.data)
            else super['devbox-gen.dev/config-hash'],
        } } } },
      },
      service: $.service(box),
      networkPolicy: $.networkPolicy(box),
    };
    { homeVolume: $.homeVolume(box) }
    + if box.state == 'archived' then $.hide(workload) else workload
  ),
}
