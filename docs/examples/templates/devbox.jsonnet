// A custom template that extends the embedded one instead of forking it: every box gets a
// `team` label and a code-server sidecar (VS Code in the browser, on the tailnet at port 8080).
// Use it with `template = "templates/devbox.jsonnet"` in devbox.toml.
local devbox = import 'devbox-gen/devbox.libsonnet';

local codeServer(box) = {
  name: 'code-server',
  image: 'ghcr.io/coder/code-server:4.92.2',
  imagePullPolicy: 'Always',
  // Loopback only, like sshd and Jupyter: tailscale forwards tailnet connections to it.
  args: ['--bind-addr=127.0.0.1:8080', '--auth=password', '--disable-telemetry', devbox.homeDir],
  env: [
    { name: 'HOME', value: devbox.homeDir },
    // The password comes from the box's own key Secret, never from Git.
    { name: 'PASSWORD_FILE', value: devbox.secretsMountPath + '/code-server-password' },
  ],
  ports: [{ name: 'code-server', containerPort: 8080 }],
  resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '250m', memory: '512Mi' } },
  // Required by devbox-gen's check stage for every container: non-root, no escalation,
  // no capabilities, RuntimeDefault seccomp.
  securityContext: devbox.restrictedSecurityContext,
  readinessProbe: { tcpSocket: { host: '127.0.0.1', port: 8080 }, periodSeconds: 10 },
  livenessProbe: { tcpSocket: { host: '127.0.0.1', port: 8080 }, periodSeconds: 30, failureThreshold: 6 },
  volumeMounts: [
    { name: 'home', mountPath: devbox.homeMountPath },
    { name: 'tmp', mountPath: '/tmp' },
  ],
};

function(box)
  devbox.bundle(box) + {
    statefulSet+: {
      metadata+: { labels+: { team: 'ml-platform' } },
      spec+: { template+: {
        metadata+: { labels+: { team: 'ml-platform' } },
        spec+: { containers+: [codeServer(box)] },
      } },
    },
  }
