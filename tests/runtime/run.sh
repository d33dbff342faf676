#!/usr/bin/env bash
# shellcheck disable=SC2016 # commands for the box are single-quoted on purpose: they expand there
# End-to-end runtime test: a generated bundle's main container, run the way
# a kubelet would (tests/runtime/kubelet.py, see README.md beside this file),
# reached with the real ssh client on port 2222 as a person would reach it.
#
#   sudo tests/runtime/run.sh          # CI runs it as root
#
# Needs root (namespaces, mounts, chown). Installs what it needs with apt
# when it is missing. Builds devbox-gen with cargo unless DEVBOX_GEN names a
# binary. KEEP=1 keeps the work directory (pods, volumes, logs) for a look.
# Exits 0 when every step passed, 1 at the first failing one, 2 when it
# cannot run at all.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
started_at=$SECONDS

say() { printf 'runtime: %s\n' "$*"; }
[[ $EUID == 0 ]] || {
    say "needs root (it creates namespaces, mounts and volumes owned by other users); CI runs it as root"
    exit 2
}

# --- tools ------------------------------------------------------------------------
# Debian's openssh-server plays the image; the rest is the kubelet's toolbox.
missing=()
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
[[ -x /usr/bin/ssh && -x /usr/bin/ssh-keygen && -x /usr/bin/ssh-agent ]] || missing+=(openssh-client)
[[ -x /usr/bin/unshare && -x /usr/bin/nsenter && -x /usr/bin/setpriv ]] || missing+=(util-linux)
[[ -x /usr/bin/python3 ]] || missing+=(python3)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v ip >/dev/null || missing+=(iproute2)
command -v curl >/dev/null || missing+=(curl)
command -v dash >/dev/null || missing+=(dash)       # the idle stopper's POSIX sh
command -v openssl >/dev/null || missing+=(openssl) # the stand-in API server's certificates
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    # openssh-server's postinst would start an sshd on the host: forbid
    # starting services for the length of the install.
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
    fi
    rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null || rc=$?
    [[ -z $own_policy ]] || rm -f "$policy"
    ((rc == 0)) || {
        say "apt-get install ${missing[*]} failed"
        exit 2
    }
fi

if [[ -z ${DEVBOX_GEN:-} ]]; then
    (cd "$repo_root" && cargo build --release --locked --quiet) || {
        say "cargo build failed"
        exit 2
    }
    DEVBOX_GEN="${CARGO_TARGET_DIR:-$repo_root/target}/release/devbox-gen"
fi
[[ -x $DEVBOX_GEN ]] || {
    say "no devbox-gen binary at $DEVBOX_GEN"
    exit 2
}

# --- the image's Python environment ----------------------------------------------------
# A real JupyterLab from PyPI (requirements.txt, every package pinned) in a venv
# of Debian's /usr/bin/python3. It plays the image's /opt/venv: root-owned, on
# the emulated image's PATH, and read-only in the pod, where it sits at the same
# path because the image's /usr and /var are the host's (so its python symlink
# and the scripts' #! lines resolve). Installed once per requirements.txt and
# Python version, then cached across runs.
venv_cache=/var/cache/devbox-gen-runtime
image_venv="$venv_cache/venv-$({ cat "$here/requirements.txt" && /usr/bin/python3 -VV; } | sha256sum | cut -c1-12)"
mkdir -p "$venv_cache"
exec 9>"$venv_cache/.lock"
flock 9
if [[ ! -e $image_venv/.installed ]]; then
    say "installing the image's Python environment (JupyterLab, tests/runtime/requirements.txt) into $image_venv"
    rm -rf "$image_venv"
    (
        umask 022
        /usr/bin/python3 -m venv "$image_venv" &&
            "$image_venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt" &&
            "$image_venv/bin/pip" check >/dev/null
    ) || {
        rm -rf "$image_venv"
        say "could not install tests/runtime/requirements.txt into $image_venv"
        exit 2
    }
    touch "$image_venv/.installed"
fi
exec 9>&-
image_path="$image_venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# --- work directory and cleanup ------------------------------------------------------
work="$(mktemp -d /tmp/devbox-runtime.XXXXXX)"
kubelet=(/usr/bin/python3 "$here/kubelet.py")
passwd_sum="$(cksum </etc/passwd)"

cleanup() {
    local status=$? pod
    trap - EXIT INT TERM
    [[ -z ${SSH_AGENT_PID:-} ]] || kill "$SSH_AGENT_PID" 2>/dev/null || true
    for pod in "$work"/pods/*/; do
        [[ -d $pod ]] || continue
        "${kubelet[@]}" stop --pod-dir "$pod" --grace 5 >/dev/null 2>&1 || true
    done
    if [[ -n ${KEEP:-} ]]; then
        say "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- steps -------------------------------------------------------------------------
step_no=0
step_start=$SECONDS
pod=""
pass() {
    step_no=$((step_no + 1))
    say "ok $step_no - $* ($((SECONDS - step_start))s)"
    step_start=$SECONDS
}
fail() {
    say "FAILED step $((step_no + 1)): $*"
    if [[ -n $pod && -d $work/pods/$pod ]]; then
        say "--- container log of $pod"
        sed 's/^/  | /' "$work/pods/$pod/container.log" || true
        say "--- /tmp/sshd.log of $pod"
        sed 's/^/  | /' "$work/pods/$pod/volumes/emptyDir/tmp/sshd.log" 2>/dev/null || true
    fi
    exit 1
}

# The user's keys, an intruder's key, and the box's GitHub key (the Secret).
mkdir -p "$work/keys" "$work/secret-tester-ssh" "$work/repo/users" "$work/pods"
for k in old new later intruder; do
    ssh-keygen -q -t ed25519 -N '' -C "$k@laptop" -f "$work/keys/$k"
done
ssh-keygen -q -t ed25519 -N '' -C "tester-devbox@github" -f "$work/secret-tester-ssh/id_ed25519"
github_fp="$(ssh-keygen -lf "$work/secret-tester-ssh/id_ed25519.pub" | awk '{print $2}')"

# A config repo with one user. The emulated image is the host's Debian with
# openssh-server, a jupyter user whose home is /storage/jupyter (README, "What
# the image must provide"), the VOLUME /home/jupyter of the images the bundle
# has to work around, and JupyterLab in a root-owned venv on its PATH; its sshd
# applies upstream OpenSSH's StrictModes (not Debian's laxer check of
# group-writable homes).
cat >"$work/repo/devbox.toml" <<'EOF'
namespace = "devboxes"
[defaults]
image = "registry.example.com/devbox/jupyter:2024.06"
[runtime]
uid = 10001
gid = 10001
EOF
write_user() { # the authorized key files, in order; extra top-level keys in $extra_top, tables in $extra_tables, [env] lines in $extra_env
    local keys=() k
    for k in "$@"; do keys+=("\"$(cat "$work/keys/$k.pub")\""); done
    cat >"$work/repo/users/tester.toml" <<EOF
email = "tester@example.com"
${extra_top:-}
[ssh]
authorized_keys = [$(
        IFS=,
        echo "${keys[*]}"
    )]
${extra_tables:-}
[env]
EDITOR = "vim"
DEVBOX_KEY_REFRESH_SECONDS = "1"
${extra_env:-}
EOF
}
build() {
    "$DEVBOX_GEN" -C "$work/repo" build >"$work/build.log" 2>&1 || {
        cat "$work/build.log"
        fail "devbox-gen build failed"
    }
}
bundle="$work/repo/out/tester"
pv="$work/pv-tester-home"

start_pod() { # NAME [kubelet.py start options...]
    pod=$1
    shift
    "${kubelet[@]}" start --bundle "$bundle" --pod-dir "$work/pods/$pod" \
        --pv tester-home="$pv" --secret tester-ssh="$work/secret-tester-ssh" \
        --image-user jupyter:10001:10001:/storage/jupyter:/bin/bash \
        --image-path "$image_venv/bin" --image-volume /home/jupyter \
        --upstream-strict-modes "$@" >>"$work/kubelet.log" 2>&1 ||
        fail "the pod did not start: $(tail -n 20 "$work/kubelet.log")"
    "${kubelet[@]}" ready --pod-dir "$work/pods/$pod" --timeout 60 >>"$work/kubelet.log" 2>&1 ||
        fail "the readinessProbe did not pass within 60s: $(tail -n 5 "$work/kubelet.log")"
}
stop_pod() {
    local how
    how="$("${kubelet[@]}" stop --pod-dir "$work/pods/$pod" --grace 30 2>>"$work/kubelet.log")" ||
        fail "the container did not stop on SIGTERM ($how)"
}
kexec() { "${kubelet[@]}" exec --pod-dir "$work/pods/$pod" -- "$@"; } # kubectl exec
pod_log() { cat "$work/pods/$pod/container.log"; }                  # kubectl logs
pod_tmp="" # the pod's /tmp (an emptyDir), seen from the node
set_pod_tmp() { pod_tmp="$work/pods/$pod/volumes/emptyDir/tmp"; }

# ssh as a person would, from inside the pod's network namespace (where the
# tailscale sidecar would forward from): the real client, strict host key
# checking against known_hosts, only the given key.
known_hosts="$work/known_hosts"
ssh_opts=(-F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o IdentityAgent=none
    -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)
in_pod_net() { timeout 60 nsenter --target "$(cat "$work/pods/$pod/init.pid")" --net -- "$@"; }
box() { # KEY CMD...: run CMD in the box over ssh
    local key=$1
    shift
    in_pod_net ssh "${ssh_opts[@]}" -p 2222 -i "$work/keys/$key" jupyter@127.0.0.1 "$@"
}
box_tty() { # KEY CMD...: the same with a terminal, as an interactive login has
    local key=$1
    shift
    in_pod_net ssh "${ssh_opts[@]}" -tt -p 2222 -i "$work/keys/$key" jupyter@127.0.0.1 "$@"
}
expect_refused() { # KEY WHAT
    local out rc=0
    out="$(box "$1" true 2>&1)" || rc=$?
    if ((rc != 255)) || [[ $out != *"Permission denied (publickey)"* ]]; then
        fail "$2: expected 'Permission denied (publickey)', got status $rc: $out"
    fi
}
host_key_fp() {
    in_pod_net ssh-keyscan -p 2222 -t ed25519 127.0.0.1 2>/dev/null | ssh-keygen -lf - | awk '{print $2}'
}
# The pod's processes, seen from the node: "PID ARGV..." per line.
pod_procs() {
    local pidns p
    pidns="$(readlink "/proc/$(cat "$work/pods/$pod/init.pid")/ns/pid")"
    for p in /proc/[0-9]*; do
        [[ "$(readlink "$p/ns/pid" 2>/dev/null)" == "$pidns" ]] || continue
        printf '%s %s\n' "${p#/proc/}" "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")"
    done
}
argv0() { tr '\0' '\n' <"/proc/$1/cmdline" | head -n1; }
env_of() { tr '\0' '\n' <"/proc/$1/environ" | sed -n "s/^$2=//p"; } # PID NAME

# HTTP from inside the pod's network namespace: the status code only, or the
# body with -b. The tailscale sidecar (userspace networking) delivers tailnet
# connections to 127.0.0.1 with the Host header the browser sent.
http() { # [-b] URL [curl options...]
    local body=
    [[ $1 != -b ]] || {
        body=1
        shift
    }
    if [[ -n $body ]]; then
        in_pod_net curl -sS --max-time 30 "$@"
    else
        in_pod_net curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@"
    fi
}
wait_http() { # URL SECONDS: until something answers on URL
    local deadline=$((SECONDS + $2)) code
    while :; do
        code="$(http "$1" || true)"
        [[ $code == 000 || -z $code ]] || return 0
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# A pure-Python wheel, built here (no network, no build backend).
make_wheel() { # NAME OUTDIR: writes OUTDIR/NAME-1.0-py3-none-any.whl
    /usr/bin/python3 - "$1" "$2" <<'EOF'
import base64, hashlib, os, sys, zipfile
name, outdir = sys.argv[1], sys.argv[2]
dist = f"{name}-1.0.dist-info"
files = {
    f"{name}/__init__.py": f"WHO = {name!r}\n",
    f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests/runtime/run.sh\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
with zipfile.ZipFile(os.path.join(outdir, f"{name}-1.0-py3-none-any.whl"), "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
EOF
}

# A browser's or a notebook's side of Jupyter (jupyter_probe.py, with the image
# venv's tornado and jupyter_client).
jupyter_probe() { in_pod_net "$image_venv/bin/python" "$here/jupyter_probe.py" "$@"; }

ts_hostname() { # the tailnet name the bundle gives the box
    /usr/bin/python3 -c '
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    for c in doc["spec"]["template"]["spec"]["containers"]:
        for e in c.get("env") or []:
            if e["name"] == "TS_HOSTNAME":
                print(e["value"])
' "$bundle/statefulset-tester.yaml"
}

# --- 1. a fresh box ------------------------------------------------------------------
write_user old
build
start_pod pod1
set_pod_tmp
pass "bundle built; pod started on a new home volume (kubelet volume layout, fsGroup, read-only root) and its readinessProbe passed"

# /etc/devbox: one projected volume of the box's own ConfigMap (keys, tailnet tags) and
# the namespace's shared scripts ConfigMap, which build writes once to
# out/_gitops/namespace/default/ (no gitops in this repo's devbox.toml).
scripts_cms=("$work/repo/out/_gitops/namespace/default"/configmap-devbox-scripts-*.yaml)
[[ ${#scripts_cms[@]} == 1 && -f ${scripts_cms[0]} ]] ||
    fail "not exactly one scripts ConfigMap in out/_gitops/namespace/default/: ${scripts_cms[*]}"
want="$(/usr/bin/python3 - "$bundle/configmap-tester-devbox.yaml" "${scripts_cms[0]}" <<'EOF'
import sys, yaml
own, scripts = (yaml.safe_load(open(path))["data"] for path in sys.argv[1:])
assert not set(own) & {"start.sh", "sshd_config", "profile.sh", "idle.py", "idle-stop.sh"}, f"the box's ConfigMap has scripts: {sorted(own)}"
print(" ".join(sorted(set(own) | set(scripts))))
EOF
)" || fail "the box's ConfigMap still carries scripts, or the ConfigMaps do not read"
got="$(kexec ls /etc/devbox | LC_ALL=C sort | tr '\n' ' ')"
[[ ${got% } == "$want" ]] || fail "/etc/devbox holds '${got% }', the two ConfigMaps give '$want'"
modes="$(kexec stat -L -c %a /etc/devbox/start.sh /etc/devbox/authorized_keys | sort -u | tr '\n' ' ')"
[[ $modes == "444 " ]] || fail "the files of /etc/devbox have modes $modes, not 0444 (defaultMode 292)"
kexec cmp -s /etc/devbox/profile.sh /etc/profile.d/devbox.sh || fail "/etc/profile.d/devbox.sh is not /etc/devbox/profile.sh"
pass "/etc/devbox is the box's ConfigMap and the shared $(basename "${scripts_cms[0]}" .yaml | sed 's/^configmap-//') projected into one read-only directory (0444): $want"

# The host key the box created on its home volume, trusted from there.
host_pub="$pv/.devbox/ssh/ssh_host_ed25519_key.pub"
[[ -s $host_pub ]] || fail "no host key on the home volume at .devbox/ssh/"
printf '[127.0.0.1]:2222 %s\n' "$(cut -d' ' -f1,2 "$host_pub")" >"$known_hosts"
first_fp="$(host_key_fp)"
[[ $first_fp == SHA256:* ]] || fail "ssh-keyscan found no ed25519 host key on port 2222"

marker="marker-$RANDOM$RANDOM"
out="$(box old 'printf "%s %s\n" "$(id -un)" "$HOME"; cd && touch .write-test && rm .write-test && echo writable; echo '"$marker"' >~/marker' 2>&1)" ||
    fail "login as jupyter with the user's key failed: $out"
[[ $out == $'jupyter /storage/jupyter\nwritable' ]] || fail "unexpected session: $out"
pass "log in as jupyter with the user's key; \$HOME is /storage/jupyter and writable"

out="$(box old 'ssh-add -l; ssh-add -T /secrets/id_ed25519.pub && echo usable' 2>&1)" ||
    fail "the GitHub key is not usable through the session's agent: $out"
[[ $out == *"$github_fp"* && $out == *usable ]] || fail "ssh-add -l does not list the GitHub key $github_fp: $out"
pass "the GitHub key from /secrets is in the session's ssh-agent and signs ($github_fp)"

out="$(box old 'grep -c "Accepted publickey for jupyter" /tmp/sshd.log' 2>&1)" || fail "no /tmp/sshd.log with the login in it: $out"
pass "sshd's log is /tmp/sshd.log and records the logins"

expect_refused intruder "a key not in authorized_keys"
box old 'grep -q "Connection closed by authenticating user jupyter" /tmp/sshd.log' || fail "the refused key is not in /tmp/sshd.log"
pass "a key not in authorized_keys is refused (and logged)"

# What `devbox-gen ssh-config` prints, as a person's ~/.ssh/config used by the real client,
# with nothing on the command line but where the tailnet name resolves (MagicDNS) and the host
# key. ssh expands `~` from the passwd entry, not $HOME: a mount namespace puts the person's
# home at root's. Their ~/.ssh holds a key the box does not accept, sorted first, and `old`.
person="$work/person"
mkdir -p "$person/.ssh"
cp -p "$work/keys/intruder" "$person/.ssh/a_intruder" && cp -p "$work/keys/intruder.pub" "$person/.ssh/a_intruder.pub"
cp -p "$work/keys/old" "$person/.ssh/laptop" && cp -p "$work/keys/old.pub" "$person/.ssh/laptop.pub"
as_person() { # CONFIG [AGENT_SOCKET]: log in to tester-devbox as CONFIG says, printing the user
    in_pod_net unshare --mount --propagation private -- sh -c 'mount --bind "$1" /root && shift && exec "$@"' sh "$person" \
        env HOME=/root SSH_AUTH_SOCK="${2:-}" ssh -F "$1" -o HostName=127.0.0.1 -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$known_hosts" -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 \
        -o LogLevel=ERROR tester-devbox 'id -un'
}
HOME="$person" "$DEVBOX_GEN" -C "$work/repo" ssh-config tester >"$work/ssh_config" 2>"$work/ssh_config.err" ||
    fail "devbox-gen ssh-config failed: $(cat "$work/ssh_config.err")"
grep -qx '    IdentityFile ~/.ssh/laptop' "$work/ssh_config" || fail "ssh-config did not name ~/.ssh/laptop: $(cat "$work/ssh_config")"
out="$(as_person "$work/ssh_config" 2>&1)" || fail "the entry ssh-config prints does not log in: $out"
[[ $out == jupyter ]] || fail "unexpected: $out"
# A key only in an agent (1Password, Secretive, a YubiKey): no file of ~/.ssh matches, the entry
# names none and ssh asks the agent. The entry this command printed before, naming a key file
# the person does not have with IdentitiesOnly, shuts the same person out.
rm "$person/.ssh/laptop" "$person/.ssh/laptop.pub"
if ! { agent_out="$(ssh-agent -s -a "$work/agent.sock")" && eval "$agent_out" >/dev/null && ssh-add -q "$work/keys/old" 2>/dev/null; }; then
    fail "could not start an ssh-agent with the key"
fi
HOME="$person" "$DEVBOX_GEN" -C "$work/repo" ssh-config tester >"$work/ssh_config" 2>"$work/ssh_config.err" ||
    fail "devbox-gen ssh-config failed: $(cat "$work/ssh_config.err")"
! grep -q Identit "$work/ssh_config" || fail "ssh-config named a key that the box does not accept: $(cat "$work/ssh_config")"
grep -q "among tester's authorized keys" "$work/ssh_config.err" || fail "ssh-config did not warn: $(cat "$work/ssh_config.err")"
out="$(as_person "$work/ssh_config" "$work/agent.sock" 2>&1)" || fail "the entry without a key does not log in with the agent's: $out"
[[ $out == jupyter ]] || fail "unexpected: $out"
# shellcheck disable=SC2088 # the literal ~, as the config holds it
HOME="$person" "$DEVBOX_GEN" -C "$work/repo" ssh-config --identity-file '~/.ssh/devbox' tester >"$work/ssh_config.old" 2>/dev/null
rc=0
out="$(as_person "$work/ssh_config.old" "$work/agent.sock" 2>&1)" || rc=$?
[[ $rc == 255 && $out == *"Permission denied (publickey)"* ]] ||
    fail "IdentitiesOnly with a missing IdentityFile was expected to shut out the agent's key: status $rc: $out"
ssh-agent -k >/dev/null 2>&1 || true
unset SSH_AGENT_PID SSH_AUTH_SOCK
pass "the entries ssh-config prints log in with the real client: the key of ~/.ssh the box accepts, else the agent's (naming a key file the person lacks shuts them out)"

out="$(box_tty old 'tty' </dev/null 2>&1)" || fail "an interactive (PTY) session failed: $out"
[[ $out == /dev/pts/* ]] || fail "no terminal in an interactive session: $out"
printf 'data %s\n' "$marker" >"$work/upload"
in_pod_net scp "${ssh_opts[@]}" -P 2222 -i "$work/keys/old" "$work/upload" jupyter@127.0.0.1:upload >/dev/null 2>&1 ||
    fail "scp (SFTP) into the box failed"
[[ "$(box old 'cat ~/upload')" == "data $marker" ]] || fail "the uploaded file differs"
pass "an interactive PTY session and scp (SFTP) work"

out="$(box old 'printf "%s|%s|%s\n" "${EDITOR:-}" "${DEVBOX_NAME:-}" "${VIRTUAL_ENV:-}"' 2>&1)" || fail "session failed: $out"
[[ $out == "vim|tester|/storage/jupyter/.venv" ]] ||
    fail "an SSH session lacks the pod's environment (EDITOR|DEVBOX_NAME|VIRTUAL_ENV): $out"
pass "SSH sessions get the pod's environment (users/tester.toml [env], start.sh's VIRTUAL_ENV)"

# --- 2. Jupyter, reached as a person reaches it ------------------------------------------
wait_http http://127.0.0.1:8888/api/status 90 || fail "Jupyter did not answer on 127.0.0.1:8888 within 90s"
jupyter_pid="$(pod_procs | awk '/jupyter-lab/ && /--port=8888/ {print $1}')"
[[ $jupyter_pid =~ ^[0-9]+$ ]] || fail "not exactly one jupyter-lab process on port 8888: $(pod_procs)"
get_token() { # KEY: sets $token as a person gets it, with `jupyter server list` over ssh
    local out
    out="$(box "$1" 'jupyter server list' 2>&1)" || fail "ssh box 'jupyter server list' failed: $out"
    token="$(sed -n 's|^http://127\.0\.0\.1:8888/?token=\([0-9a-f]*\) :: /storage/jupyter$|\1|p' <<<"$out")"
    [[ $token =~ ^[0-9a-f]{16,}$ ]] ||
        fail "ssh box 'jupyter server list' does not show one server on 127.0.0.1:8888 with a token and root /storage/jupyter: $out"
}
get_token old
pass "JupyterLab (real, $("$image_venv/bin/jupyter-lab" --version)) runs from the image's venv; ssh box 'jupyter server list' gives its URL and token"

tailnet_host="$(ts_hostname)"
[[ -n $tailnet_host ]] || fail "no TS_HOSTNAME in the bundle"
for host in "$tailnet_host:8888" "100.101.102.103:8888"; do
    code="$(http http://127.0.0.1:8888/api/status -H "Host: $host" -H "Authorization: token $token")"
    [[ $code == 200 ]] || fail "GET /api/status with Host: $host and the token: $code, expected 200 (403: Jupyter's Host check)"
    code="$(http http://127.0.0.1:8888/api/status -H "Host: $host")"
    [[ $code == 403 ]] || fail "GET /api/status with Host: $host without the token: $code, expected 403"
done
code="$(http "http://127.0.0.1:8888/lab?token=$token" -H "Host: $tailnet_host:8888")"
[[ $code == 200 ]] || fail "GET /lab?token=... with Host: $tailnet_host:8888: $code, expected 200"
! pod_log | grep -F "Blocking request with non-local 'Host'" || fail "Jupyter blocked a tailnet Host header"
pass "over the tailnet (Host: $tailnet_host:8888 and Host: 100.101.102.103:8888, delivered to loopback) Jupyter answers 200 with the token, 403 without"

# The same Jupyter without --ServerApp.allow_remote_access, started by hand in
# the pod: it refuses those requests, so the step above can tell.
neg_token="neg$RANDOM$RANDOM"
kexec bash -c 'JUPYTER_RUNTIME_DIR=/tmp/neg-runtime nohup jupyter lab --ip=127.0.0.1 --port=8899 --no-browser \
    --ServerApp.root_dir=/storage/jupyter --IdentityProvider.token='"$neg_token"' >/tmp/jupyter-neg.log 2>&1 & echo $! >/tmp/jupyter-neg.pid' ||
    fail "could not start a second Jupyter in the pod"
wait_http http://127.0.0.1:8899/api/status 90 || fail "the second Jupyter did not answer on 8899: $(cat "$pod_tmp/jupyter-neg.log")"
code="$(http http://127.0.0.1:8899/api/status -H "Host: $tailnet_host:8888" -H "Authorization: token $neg_token")"
[[ $code == 403 ]] || fail "without allow_remote_access, Host: $tailnet_host:8888 got $code, expected 403"
code="$(http http://127.0.0.1:8899/api/status -H "Authorization: token $neg_token")"
[[ $code == 200 ]] || fail "without allow_remote_access, Host: 127.0.0.1:8899 got $code, expected 200"
grep -qF "Blocking request with non-local 'Host' $tailnet_host" "$pod_tmp/jupyter-neg.log" ||
    fail "the second Jupyter did not log the blocked Host: $(cat "$pod_tmp/jupyter-neg.log")"
kexec sh -c 'kill "$(cat /tmp/jupyter-neg.pid)"' || fail "could not stop the second Jupyter"
pass "without --ServerApp.allow_remote_access the same Jupyter answers 403 to Host: $tailnet_host:8888 (and logs 'Blocking request with non-local Host')"

# VS Code's and `ssh -L`'s way in: a TCP forward through sshd.
timeout 60 nsenter --target "$(cat "$work/pods/$pod/init.pid")" --net -- ssh "${ssh_opts[@]}" -N \
    -o ExitOnForwardFailure=yes -L 127.0.0.1:18888:127.0.0.1:8888 -p 2222 -i "$work/keys/old" jupyter@127.0.0.1 &
forward=$!
deadline=$((SECONDS + 20))
until [[ "$(http "http://127.0.0.1:18888/api/status?token=$token" || true)" == 200 ]]; do
    kill -0 "$forward" 2>/dev/null || fail "ssh -L 127.0.0.1:18888:127.0.0.1:8888 exited"
    ((SECONDS < deadline)) || fail "no 200 through ssh -L 127.0.0.1:18888:127.0.0.1:8888 within 20s"
    sleep 0.5
done
kill "$forward"
wait "$forward" 2>/dev/null || true
pass "through an ssh forward (ssh -N -L 18888:127.0.0.1:8888, as VS Code tunnels) GET /api/status?token=... answers 200"

# --- 3. PATH: the same in Jupyter, in ssh sessions and in login shells -------------------
want_path="/storage/jupyter/.venv/bin:$image_path"
jupyter_path="$(env_of "$jupyter_pid" PATH)"
[[ $jupyter_path == "$want_path" ]] || fail "Jupyter's PATH is $jupyter_path, expected $want_path"
out="$(box old 'echo "$PATH"' 2>&1)" || fail "ssh failed: $out"
[[ $out == "$jupyter_path" ]] || fail "a non-interactive ssh session's PATH is $out, Jupyter's is $jupyter_path"
out="$(printf 'echo "PATH=[$PATH]"; exit\n' | box_tty old 2>&1)" || fail "an interactive login over ssh failed: $out"
# (The terminal echoes the input line first; bash adds bracketed-paste escapes.)
login_path="$(tr -d '\r' <<<"$out" | sed -n 's/.*PATH=\[\([^]$]*\)\].*/\1/p')"
[[ $login_path == "$jupyter_path" ]] ||
    fail "an interactive login shell's PATH is '$login_path', Jupyter's is $jupyter_path (/etc/profile resets it; /etc/profile.d/devbox.sh must restore it); session: $out"
out="$(box old 'bash -lc "echo \$PATH"' 2>&1)" || fail "ssh box bash -lc failed: $out"
[[ $out == "$jupyter_path" ]] || fail "bash -lc's PATH over ssh is $out, Jupyter's is $jupyter_path"
out="$(jupyter_probe terminal http://127.0.0.1:8888 "$token" "$tailnet_host:8888" 2>&1)" ||
    fail "a Jupyter terminal (websocket, Host: $tailnet_host:8888) failed: $out"
[[ $out == "$jupyter_path" ]] || fail "a Jupyter terminal's PATH is $out, Jupyter's is $jupyter_path (it runs sh -l)"
pass "PATH is the same in Jupyter, ssh box CMD, an interactive login, bash -lc and a Jupyter terminal (sh -l over the tailnet): $want_path"

# --- 4. pip install into the persistent home venv ----------------------------------------
mkdir -p "$work/wheels"
make_wheel devbox_probe_ssh "$work/wheels"
make_wheel devbox_probe_nb "$work/wheels"
in_pod_net scp "${ssh_opts[@]}" -P 2222 -i "$work/keys/old" "$work/wheels/"*.whl jupyter@127.0.0.1: >/dev/null 2>&1 ||
    fail "scp of the wheels failed"
out="$(box old 'pip install --no-index ./devbox_probe_ssh-1.0-py3-none-any.whl' 2>&1)" || fail "ssh box 'pip install' failed: $out"
out="$(box old 'python -c "import devbox_probe_ssh; print(devbox_probe_ssh.__file__)"' 2>&1)" ||
    fail "the package pip installed is not importable: $out"
[[ $out == /storage/jupyter/.venv/lib/python3*/site-packages/devbox_probe_ssh/__init__.py ]] ||
    fail "pip installed it outside the home venv: $out"
out="$(box old '"$HOME"/.venv/bin/python -c "import jupyterlab, devbox_probe_ssh; print(jupyterlab.__file__)"' 2>&1)" ||
    fail "the home venv does not see both the image's packages and its own: $out"
[[ $out == "$image_venv/"* ]] || fail "jupyterlab comes from $out, not the image's venv"
pass "ssh box 'pip install ./x.whl' installs into ~/.venv; the home venv imports it and the image's jupyterlab"

default_kernel() { # Jupyter's default kernelspec must run the home venv's python
    local specs out
    specs="$(http -b http://127.0.0.1:8888/api/kernelspecs -H "Authorization: token $token")" ||
        fail "GET /api/kernelspecs failed: $specs"
    out="$(/usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["default"], s["kernelspecs"][s["default"]]["spec"]["argv"][0])' <<<"$specs")" ||
        fail "unexpected /api/kernelspecs: $specs"
    [[ $out == "python3 /storage/jupyter/.venv/bin/python" ]] || fail "Jupyter's default kernel is not the home venv's python: $out"
}
default_kernel
kernel="$(http -b -X POST http://127.0.0.1:8888/api/kernels -H "Authorization: token $token" \
    -H 'Content-Type: application/json' -d '{"name": "python3"}')" || fail "POST /api/kernels failed: $kernel"
kernel_id="$(/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$kernel")" ||
    fail "POST /api/kernels: $kernel"
deadline=$((SECONDS + 30))
until kernel_pid="$(pod_procs | awk -v f="kernel-$kernel_id.json" 'index($0, f) {print $1}')" && [[ -n $kernel_pid ]]; do
    ((SECONDS < deadline)) || fail "no kernel process for kernel $kernel_id: $(pod_procs)"
    sleep 0.5
done
[[ "$(argv0 "$kernel_pid")" == /storage/jupyter/.venv/bin/python ]] ||
    fail "the kernel runs $(argv0 "$kernel_pid"), not the home venv's python"
out="$(jupyter_probe kernel-ws http://127.0.0.1:8888 "$token" "$tailnet_host:8888" "$kernel_id" 2>&1)" ||
    fail "the kernel's websocket with Host and Origin http://$tailnet_host:8888 failed: $out"
[[ $out == "ipython python 3."* ]] || fail "unexpected kernel_info_reply over the websocket: $out"
# %pip in a notebook: a cell executed in that kernel through its connection file.
kernel_run() { # CODE: run CODE in the kernel, print its output
    jupyter_probe kernel-exec "$pv/jupyter/.local/share/jupyter/runtime/kernel-$kernel_id.json" "$1"
}
out="$(kernel_run $'%pip install --no-index /storage/jupyter/devbox_probe_nb-1.0-py3-none-any.whl\nimport sys, devbox_probe_nb, devbox_probe_ssh\nprint("prefix", sys.prefix)' 2>&1)" ||
    fail "%pip install in the kernel failed: $out"
[[ $out == *"prefix /storage/jupyter/.venv"* ]] || fail "the kernel's sys.prefix is not the home venv: $out"
out="$(box old 'python -c "import devbox_probe_nb; print(devbox_probe_nb.__file__)"' 2>&1)" ||
    fail "what %pip installed in the notebook is not importable over ssh: $out"
[[ $out == /storage/jupyter/.venv/* ]] || fail "%pip installed outside the home venv: $out"
code="$(http -X DELETE "http://127.0.0.1:8888/api/kernels/$kernel_id" -H "Authorization: token $token")"
[[ $code == 204 ]] || fail "DELETE /api/kernels/$kernel_id: $code"
pass "Jupyter's python3 kernelspec and a kernel started through its REST API run ~/.venv/bin/python (its websocket answers over the tailnet Host); %pip install in it lands in ~/.venv"

# --- 5. the readinessProbe does not connect to sshd --------------------------------------
closed() { grep -cE 'Connection closed|Connection reset|\[preauth\]' "$pod_tmp/sshd.log" || true; }
before="$(closed)"
for _ in 1 2 3 4 5; do
    "${kubelet[@]}" ready --pod-dir "$work/pods/$pod" --timeout 10 >>"$work/kubelet.log" 2>&1 ||
        fail "the readinessProbe failed on a running box"
done
sleep 1
[[ "$(closed)" == "$before" ]] || fail "the readinessProbe left lines in sshd's log: $(tail -n 5 "$pod_tmp/sshd.log")"
# A probe that connects (the old one) does leave them: the check can tell.
kexec bash -c 'exec 3<>/dev/tcp/127.0.0.1/2222' || fail "cannot connect to sshd from the pod"
deadline=$((SECONDS + 10))
until (($(closed) > before)); do
    ((SECONDS < deadline)) || fail "a bare TCP connection left no line in sshd's log, so this check proves nothing"
    sleep 0.5
done
pass "5 readinessProbe runs pass and leave nothing in sshd's log (a bare connection to sshd does)"

# --- 6. key rotation, then a restart on the same home volume -------------------------
# The home volume as an older devbox-gen left it: tailscaled's state in a
# subPath .tailscale that the kubelet created (root, the volume root's mode),
# written by the sidecar as the box's user.
install -d -o root -g 10001 -m 2775 "$pv/.tailscale"
install -d -o 10001 -g 10001 -m 0700 "$pv/.tailscale/files"
printf '{"_machinekey":"privkey:%064d"}\n' 0 >"$pv/.tailscale/tailscaled.state"
chown 10001:10001 "$pv/.tailscale/tailscaled.state"
chmod 0600 "$pv/.tailscale/tailscaled.state"
# A server file left by a Jupyter that died without cleaning up (a node
# failure), under a PID that is alive in every new pod: 1, start.sh itself.
# `jupyter server list` would show its URL and token first; start.sh must
# remove it (get_token below wants exactly one server).
runtime_dir="$pv/jupyter/.local/share/jupyter/runtime"
install -d -o 10001 -g 10001 "$runtime_dir"
printf '{"base_url": "/", "hostname": "127.0.0.1", "password": false, "pid": 1, "port": 8888, "root_dir": "/storage/jupyter", "secure": false, "sock": "", "token": "%s", "url": "http://127.0.0.1:8888/", "version": "2.0.0"}\n' \
    "$(printf 'dead%.0s' {1..12})" >"$runtime_dir/jpserver-1.json"
chown 10001:10001 "$runtime_dir/jpserver-1.json"
write_user new
build
stop_pod
start_pod pod2
set_pod_tmp
expect_refused old "the removed key after the restart"
out="$(box new 'cat ~/marker' 2>&1)" || fail "the new key does not work after the restart: $out"
pass "rotation + rebuild + restart on the same home: the new key works, the removed key is refused"

[[ $out == "$marker" ]] || fail "the file written in \$HOME before the restart is gone: $out"
[[ "$(host_key_fp)" == "$first_fp" ]] || fail "the host key changed across the restart"
pass "the restart kept \$HOME's files and the host key (strict host key checking passed, $first_fp)"

out="$(box new 'python -c "import devbox_probe_ssh, devbox_probe_nb; print(devbox_probe_ssh.WHO, devbox_probe_nb.WHO)"' 2>&1)" ||
    fail "the packages installed before the restart are gone: $out"
[[ $out == "devbox_probe_ssh devbox_probe_nb" ]] || fail "unexpected: $out"
! pod_log | grep -F "created the Python environment" || fail "start.sh recreated the home venv on a restart"
wait_http http://127.0.0.1:8888/api/status 90 || fail "Jupyter did not come back after the restart"
get_token new
default_kernel
[[ ! -e $runtime_dir/jpserver-1.json ]] || fail "start.sh left a dead server's jpserver-1.json"
pass "the restart kept the home venv and what pip and %pip installed into it; the kernelspec still runs it; a dead server's file was removed, so jupyter server list shows the live one only"

[[ ! -e $pv/.tailscale ]] || fail "start.sh left the old tailscale state: $(ls -la "$pv/.tailscale")"
pod_log | grep -qF "removed the old tailscale state /storage/.tailscale" || fail "start.sh did not log the removal: $(pod_log)"
out="$(box new 'test -e /var/run/secrets/kubernetes.io/serviceaccount && echo token-mounted; find /storage -name tailscaled.state 2>/dev/null; ls -d /storage/.tailscale 2>/dev/null; echo end' 2>&1)" ||
    fail "ssh failed: $out"
[[ $out == end ]] || fail "an ssh session can see tailnet or API credentials: $out"
pass "an old box's /storage/.tailscale (node key) is removed at start; ssh sessions have no service-account token and no tailscaled.state"

# --- 7. key rotation reaching the running pod ------------------------------------------
# authorized_keys is in the box's own ConfigMap, whose name never changes; the
# pod template names the shared scripts ConfigMap by its content, which a key
# does not change. So in a cluster this rebuild restarts nothing: the kubelet
# rewrites the projected volume in place and start.sh's refresh loop has to
# pick it up.
sts_before="$(cksum <"$bundle/statefulset-tester.yaml")"
scripts_before="$(ls "$work/repo/out/_gitops/namespace/default")"
write_user later
build
[[ "$(cksum <"$bundle/statefulset-tester.yaml")" == "$sts_before" ]] ||
    fail "a key change changed the StatefulSet (it would restart the box)"
[[ "$(ls "$work/repo/out/_gitops/namespace/default")" == "$scripts_before" ]] ||
    fail "a key change changed the namespace directory: $(ls "$work/repo/out/_gitops/namespace/default")"
"${kubelet[@]}" sync-config --pod-dir "$work/pods/$pod" --bundle "$bundle" >>"$work/kubelet.log" 2>&1 ||
    fail "the projected ConfigMap volume update failed"
deadline=$((SECONDS + 45))
until box later true >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "the added key did not work within 45s of the ConfigMap update"
    sleep 1
done
expect_refused new "the removed key in the running pod"
pass "a rotation reaches the running pod (the projected volume updated in place, no restart): the new key works, the removed one is refused"

# --- 8. a recursive fsGroup change on the home volume ----------------------------------
# fsGroupChangePolicy Always (or a volume restored from a snapshot) makes
# every file on the home group-writable; sshd's StrictModes would then refuse
# every key unless start.sh repairs the modes. This pod also gets a small
# sshd log limit, for step 9.
log_max=4000
extra_env="DEVBOX_SSHD_LOG_MAX_BYTES = \"$log_max\""
write_user later
build
stop_pod
start_pod pod3 --fs-group-change-policy Always
set_pod_tmp
out="$(box later 'stat -c "%a %n" ~ ~/.ssh ~/.ssh/authorized_keys' 2>&1)" ||
    fail "login failed after a recursive fsGroup change: $out"
[[ $out == $'2755 /storage/jupyter\n2700 /storage/jupyter/.ssh\n600 /storage/jupyter/.ssh/authorized_keys' ]] ||
    fail "unexpected modes: $out"
pass "after a recursive fsGroup change (policy Always) start.sh restores the modes sshd's StrictModes needs"

# --- 9. sshd's log stays bounded ---------------------------------------------------------
for i in $(seq 1 30); do
    box later true || fail "login $i failed"
done
sleep 3 # three refresh periods (DEVBOX_KEY_REFRESH_SECONDS=1)
[[ -s $pod_tmp/sshd.log.1 ]] || fail "30 logins later /tmp/sshd.log was never rotated to sshd.log.1 (limit $log_max bytes): $(ls -l "$pod_tmp")"
size="$(stat -c %s "$pod_tmp/sshd.log" 2>/dev/null || echo 0)"
((size <= log_max)) || fail "/tmp/sshd.log is $size bytes, over the limit of $log_max, after 3 refresh periods"
old_size="$(stat -c %s "$pod_tmp/sshd.log.1")"
((old_size <= 4 * log_max)) || fail "/tmp/sshd.log.1 is $old_size bytes"
client_port="$(box later 'echo "${SSH_CLIENT:-}"' | awk '{print $2}')"
[[ $client_port =~ ^[0-9]+$ ]] || fail "no SSH_CLIENT in the session"
sleep 0.5
cat "$pod_tmp/sshd.log.1" "$pod_tmp/sshd.log" 2>/dev/null | grep -q "Accepted publickey for jupyter from 127.0.0.1 port $client_port " ||
    fail "a login after the rotation (port $client_port) is in neither /tmp/sshd.log nor sshd.log.1: sshd writes to a removed file"
pass "/tmp/sshd.log is rotated past DEVBOX_SSHD_LOG_MAX_BYTES ($size bytes now, sshd.log.1 $old_size), and logins after that are logged in it"

# Without sshd the readinessProbe fails (it checks sshd's pid and socket).
kexec sh -c 'kill "$(cat /tmp/sshd.pid)"' || fail "could not stop sshd in the pod"
if "${kubelet[@]}" ready --pod-dir "$work/pods/$pod" --timeout 3 >>"$work/kubelet.log" 2>&1; then
    fail "the readinessProbe passes with sshd stopped"
fi
pass "with sshd stopped the readinessProbe fails"

# --- 10. shared memory and a read-only dataset -----------------------------------------
# `shm` is a Memory emptyDir of that size at /dev/shm; a dataset is an existing claim,
# mounted read-only, whose files keep their owner and modes (no fsGroup walk: kubeflow#5676).
mkdir -p "$work/pv-imagenet/train"
echo "n01440764 tench" >"$work/pv-imagenet/train/labels.txt"
chmod 0644 "$work/pv-imagenet/train/labels.txt"
chmod 0755 "$work/pv-imagenet" "$work/pv-imagenet/train"
dataset_before="$(stat -c '%u:%g %a' "$work/pv-imagenet/train/labels.txt")"
printf '[datasets.imagenet]\nclaim = "imagenet-ro"\n' >>"$work/repo/devbox.toml"
extra_top=$'shm = "1Gi"\ndatasets = ["imagenet"]'
write_user later
build
stop_pod
start_pod pod4 --pv imagenet-ro="$work/pv-imagenet"
out="$(box later 'df -k --output=size /dev/shm | tail -n 1 | tr -d " "; cat /datasets/imagenet/train/labels.txt; touch /datasets/imagenet/new 2>&1 || true' 2>&1)" ||
    fail "login failed with shm and a dataset: $out"
[[ $out == $'1048576\nn01440764 tench\n'*"Read-only file system"* ]] ||
    fail "expected a 1Gi /dev/shm, the dataset readable and not writable: $out"
[[ "$(stat -c '%u:%g %a' "$work/pv-imagenet/train/labels.txt")" == "$dataset_before" ]] ||
    fail "the dataset's file changed owner or mode: $(stat -c '%u:%g %a' "$work/pv-imagenet/train/labels.txt"), was $dataset_before"
[[ ! -e $work/pv-imagenet/new ]] || fail "the box wrote into the dataset"
pass "shm = \"1Gi\" is a 1Gi /dev/shm; the dataset is readable at /datasets/imagenet, refuses writes, and keeps its files' owner and modes ($dataset_before)"

# --- 11. idle auto-stop ----------------------------------------------------------------
# [idle] puts the policy (idle.json) into the box's ConfigMap and the idle
# container into the pod; the watcher (idle.py) and the stopper (idle-stop.sh)
# are the shared scripts ConfigMap's, in the same /etc/devbox; the
# [env] overrides shrink the policy's minutes to seconds (idle.py's header).
# The watcher runs in the emulated pod, as in a cluster. The idle container
# does not (kubelet.py runs only the main container): its program, from the
# same /etc/devbox, runs here under dash with the host's curl, against a
# stand-in API server (apiserver.py), reading the pod's /run/devbox from the
# node's side.
idle_after=3 idle_grace=2 idle_window=6
# Working hours give the bundle its wake CronJob; on the day after tomorrow
# (in UTC) and one minute long, they never keep this run's box awake.
off_day="$(LC_ALL=C date -u -d '+2 days' +%a | tr '[:upper:]' '[:lower:]')"
extra_tables=$'[idle]\nafter = "10m"\n\n[schedule]\ntimezone = "UTC"\n'"days = [\"$off_day\"]"$'\nstart = "00:00"\nstop = "00:01"'
extra_env="DEVBOX_IDLE_INTERVAL_SECONDS = \"1\"
DEVBOX_IDLE_AFTER_SECONDS = \"$idle_after\"
DEVBOX_IDLE_SSH_GRACE_SECONDS = \"$idle_grace\"
DEVBOX_IDLE_TRAFFIC_WINDOW_SECONDS = \"$idle_window\""
write_user later
build
stop_pod
start_pod pod5 --pv imagenet-ro="$work/pv-imagenet"
pod_root="/proc/$(cat "$work/pods/$pod/init.pid")/root" # the container's filesystem, from the node
idle_dir="$pod_root/run/devbox"
request="$idle_dir/stop-requested"
stopper_log="$work/stopper.log"
idle_status() { cat "$idle_dir/idle" 2>/dev/null; }
idle_context() { # for a failure: what the watcher says, and what the stopper logged
    printf 'idle status:\n%s' "$(idle_status)"
    [[ ! -s $stopper_log ]] || printf '\nstopper log:\n%s' "$(cat "$stopper_log")"
}
in_pod_log() { grep -q "$@" "$work/pods/$pod/container.log"; }
wait_until() { # SECONDS WHAT CMD...: until CMD succeeds; fails with WHAT after SECONDS
    local deadline=$((SECONDS + $1)) seconds=$1 what=$2
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || fail "$what (within ${seconds}s); $(idle_context)"
        sleep 0.2
    done
}
no_request() { [[ ! -e $request ]]; }
keeps_running() { # SECONDS WHAT: no stop request for SECONDS
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        no_request || fail "$2 did not keep the box: $(cat "$request"); $(idle_context)"
        sleep 0.2
    done
}
stop_within=$((idle_grace + idle_after + 5)) # a new connection's grace, the idle time, and slack

/usr/bin/python3 -c '
import json, sys
policy = json.load(open(sys.argv[1]))
assert policy["after_seconds"] == 600, policy
' "$pod_root/etc/devbox/idle.json" || fail "idle.json in /etc/devbox does not say after_seconds 600 (after = \"10m\"): $(cat "$pod_root/etc/devbox/idle.json")"
find_watcher() { # sets watcher_pid to the one idle.py process of the pod
    watcher_pid="$(pod_procs | awk '/\/etc\/devbox\/idle\.py/ {print $1}')"
    [[ $watcher_pid =~ ^[0-9]+$ ]]
}
# start.sh starts it right after sshd, which the readinessProbe waits for.
wait_until 10 "no idle.py process in the pod" find_watcher
[[ "$(argv0 "$watcher_pid")" == "$image_venv/bin/python3" ]] ||
    fail "idle.py runs on $(argv0 "$watcher_pid"), not the image's python3 ($image_venv/bin/python3, found before ~/.venv is on PATH)"
wait_until 10 "no status file $idle_dir/idle" test -s "$idle_dir/idle"
out="$(box later 'python3 /etc/devbox/idle.py status' 2>&1)" || fail "ssh box 'python3 /etc/devbox/idle.py status' failed: $out"
[[ $out == running:* && $out == *$'\nstops at: '*' UTC if nothing happens'* && $out == *"policy: stop after ${idle_after}s without activity"* ]] ||
    fail "idle.py status over ssh does not say why the box runs and when it stops: $out"
pass "idle on: the watcher runs /etc/devbox/idle.py (the shared scripts ConfigMap) on the image's python3; over ssh, idle.py status says: $(head -n 1 <<<"$out")"

wait_until 60 "an unused box (Jupyter running, nobody connected) did not ask to be stopped" test -e "$request"
in_pod_log '^devbox: idle: stop requested: idle since ' || fail "no 'stop requested' line in the container log"
pass "an unused box asks to be stopped after ${idle_after}s ($(cat "$request"))"

# a. A session with steady traffic (a person typing, a transfer, an editor at
# work): 4 KiB/s, far above the floor of ssh.bytes_per_minute (4096) per minute.
traffic_seconds=$((idle_grace + idle_after + 5))
for ((i = 0; i < traffic_seconds * 4; i++)); do
    head -c 1024 /dev/urandom
    sleep 0.25
done | in_pod_net ssh "${ssh_opts[@]}" -p 2222 -i "$work/keys/later" jupyter@127.0.0.1 'cat >/dev/null' &
sender=$!
wait_until 5 "a new ssh session did not withdraw the stop request" no_request
keeps_running $((traffic_seconds - 2)) "an ssh session sending 4 KiB/s"
out="$(idle_status)"
[[ $out == *$'\nin use now: ssh: connection from 127.0.0.1:'*' with traffic: '* ]] || fail "the status does not name the ssh traffic: $out"
wait "$sender" || fail "the ssh session sending data failed"
wait_until $((idle_after + idle_window + 5)) "the box did not ask to be stopped after the session ended" test -e "$request"
in_pod_log '^devbox: idle: stop request withdrawn: running: in use: ssh: ' || fail "the withdrawal is not logged"
pass "an ssh session with traffic keeps the box past grace + after (${idle_grace}s + ${idle_after}s): $(grep '^in use now:' <<<"$out")"

# b. A session that only stays connected: OpenSSH's keepalives, one a second
# (ServerAliveInterval=1, 15 to 60 times a usual setting). Each is one SSH
# packet of 52 bytes: 6 or 7 of them, 312 or 364 bytes, in the 6 s traffic
# window, under the floor of 4096 bytes a minute (409 per 6 s). (In a 3 s
# window a fourth would cross it.)
timeout 60 nsenter --target "$(cat "$work/pods/$pod/init.pid")" --net -- ssh "${ssh_opts[@]}" -N \
    -o ServerAliveInterval=1 -o ServerAliveCountMax=60 -p 2222 -i "$work/keys/later" jupyter@127.0.0.1 &
keeper=$!
wait_until 5 "a new ssh session did not withdraw the stop request" no_request
wait_until "$stop_within" "a session sending only keepalives kept the box running" test -e "$request"
kill -0 "$keeper" 2>/dev/null || fail "the keepalive session ended early"
quiet="$(idle_status | sed -n 's/^connected, below the traffic floor (not counted): //p')"
[[ $quiet == 127.0.0.1:* ]] || fail "the status does not show the connected session below the floor: $(idle_status)"
kill "$keeper"
wait "$keeper" 2>/dev/null || true
pass "a session that only sends keepalives (ServerAliveInterval=1) does not keep the box past grace + after: $quiet"

# c. A CPU-bound job left running after the session closed.
busy_pid="$(box later 'nohup sh -c "while :; do :; done" </dev/null >/dev/null 2>&1 & echo $!')" || fail "could not start a busy job over ssh"
[[ $busy_pid =~ ^[0-9]+$ ]] || fail "no pid for the busy job: $busy_pid"
wait_until 5 "a new ssh session did not withdraw the stop request" no_request
keeps_running $((idle_grace + idle_after + 2)) "a busy process"
out="$(idle_status)"
[[ $out == *$'\nin use now: '*"cpu: pid $busy_pid (sh) used "* ]] || fail "the status does not name the busy process $busy_pid: $out"
kexec kill "$busy_pid" || fail "could not kill the busy job"
wait_until $((idle_after + 5)) "the box did not ask to be stopped once the busy job was killed" test -e "$request"
pass "a CPU-bound process started over ssh keeps the box after the session closed; killed, the box goes idle ($(sed -n 's/^in use now: //p' <<<"$out"))"

# Jupyter: a kernel's own activity (its messages) is use; REST requests, which
# an open JupyterLab tab sends as long as it is visible, are not, though they
# move the server-wide last_activity of /api/status.
get_token later
kernel="$(http -b -X POST http://127.0.0.1:8888/api/kernels -H "Authorization: token $token" \
    -H 'Content-Type: application/json' -d '{"name": "python3"}')" || fail "POST /api/kernels failed: $kernel"
kernel_id="$(/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$kernel")" ||
    fail "POST /api/kernels: $kernel"
wait_until 30 "no kernel connection file for $kernel_id" test -e "$pv/jupyter/.local/share/jupyter/runtime/kernel-$kernel_id.json"
wait_until $((stop_within + 10)) "the box did not ask to be stopped after the kernel started" test -e "$request"
polls=0
deadline=$((SECONDS + idle_after + 2))
while ((SECONDS < deadline)); do
    for path in /api/status /api/kernels /api/sessions "/api/kernels/$kernel_id"; do
        [[ "$(http "http://127.0.0.1:8888$path" -H "Authorization: token $token")" == 200 ]] || fail "GET $path did not answer 200"
        polls=$((polls + 1))
    done
    [[ -e $request ]] || fail "REST polling (as an open JupyterLab tab's) withdrew the stop request: $(idle_context)"
    sleep 0.5
done
out="$(kernel_run 'print(6 * 7)')" || fail "running a cell failed: $out"
[[ $out == 42 ]] || fail "the cell printed $out"
wait_until 5 "a cell run did not withdraw the stop request" no_request
[[ "$(idle_status)" == *"jupyter: the server on port 8888 was used (a kernel's messages)"* ]] ||
    fail "the status does not name the kernel: $(idle_status)"
pass "Jupyter: $polls REST requests over $((idle_after + 2))s (an open tab's polling) do not keep the box; a cell run in a kernel does"

# d. A hold, set as the README tells: touch -d with a time in the future.
box later 'touch -d "+1 hour" ~/.devbox-hold' || fail "could not touch ~/.devbox-hold over ssh"
hold_utc="$(date -u -d "@$(stat -c %Y "$pv/jupyter/.devbox-hold")" '+%Y-%m-%d %H:%M:%S UTC')"
wait_until 5 "a new ssh session did not withdraw the stop request" no_request
keeps_running $((idle_grace + idle_after + 2)) "a hold until $hold_utc"
out="$(box later 'python3 /etc/devbox/idle.py status' 2>&1)" || fail "idle.py status over ssh failed: $out"
[[ $out == "running: held by ~/.devbox-hold until $hold_utc"$'\n'* && $out == *$'\nstops at: '"$hold_utc if nothing happens"* ]] ||
    fail "idle.py status over ssh does not say that the hold keeps the box until $hold_utc: $out"
in_pod_log -F "running: held by ~/.devbox-hold until $hold_utc; stops at $hold_utc if nothing happens" ||
    fail "the hold is not in the container log"
kexec rm /storage/jupyter/.devbox-hold || fail "could not remove the hold"
wait_until "$stop_within" "the box did not ask to be stopped once the hold was removed" test -e "$request"
pass "a hold (touch -d '+1 hour' ~/.devbox-hold) keeps the box; the log line and idle.py status over ssh say why and until when; rm ends it"

# e. The stopper, as the idle container runs it: its command and environment
# from the bundle, the request from the pod's /run/devbox, and the API
# server's answers: first a 403 (a missing Role), then the Scale object.
sidecar_env="$(/usr/bin/python3 -c '
import sys, yaml
sts = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "StatefulSet")
spec = sts["spec"]["template"]["spec"]
idle = next(c for c in spec["containers"] if c["name"] == "idle")
main = spec["containers"][0]
status_vol = next(m["name"] for m in main["volumeMounts"] if m["mountPath"] == "/run/devbox")
assert idle["command"] == ["/bin/sh", "/etc/devbox/idle-stop.sh"], idle["command"]
assert any(m["name"] == status_vol and m["mountPath"] == "/run/devbox" and m.get("readOnly") for m in idle["volumeMounts"]), idle["volumeMounts"]
print("DEVBOX_NAMESPACE=" + sts["metadata"]["namespace"])
for e in idle.get("env") or []:
    print(e["name"] + "=" + e["value"])
' "$bundle/statefulset-tester.yaml")" || fail "the bundle has no idle container running idle-stop.sh with the pod's /run/devbox read-only"
namespace="$(sed -n 's/^DEVBOX_NAMESPACE=//p' <<<"$sidecar_env")"
box_name="$(sed -n 's/^DEVBOX_NAME=//p' <<<"$sidecar_env")"
[[ -n $namespace && -n $box_name ]] || fail "no namespace or DEVBOX_NAME for the idle container: $sidecar_env"
mapfile -t sidecar_env <<<"$sidecar_env"
api="$work/apiserver"
mkdir -p "$api"
printf 'token-before-rotation-%s\n' "$RANDOM" >"$api/token"
/usr/bin/python3 "$here/apiserver.py" --dir "$api" --token-file "$api/token" --forbid 1 \
    --user "system:serviceaccount:$namespace:$box_name" 2>"$api/log" &
apiserver=$!
deadline=$((SECONDS + 20))
until [[ -s $api/port ]]; do
    if ! kill -0 "$apiserver" 2>/dev/null || ((SECONDS >= deadline)); then
        fail "the stand-in API server did not start: $(cat "$api/log")"
    fi
    sleep 0.1
done
run_stopper() { # STATUS_DIR LOG: the pod's /etc/devbox/idle-stop.sh, under dash, as the sidecar runs it
    env -i PATH=/usr/bin:/bin "${sidecar_env[@]}" DEVBOX_IDLE_STATUS_DIR="$1" DEVBOX_IDLE_POLL_SECONDS=1 \
        DEVBOX_API_URL="https://127.0.0.1:$(cat "$api/port")" DEVBOX_CA_FILE="$api/ca.crt" DEVBOX_TOKEN_FILE="$api/token" \
        dash "$pod_root/etc/devbox/idle-stop.sh" 2>"$2" &
    stopper=$!
}
has_requests() { (($(grep -c . "$api/requests.jsonl") >= $1)); } # N
run_stopper "$idle_dir" "$stopper_log"
wait_until 10 "the stopper sent nothing for $request" has_requests 1
# The kubelet rotates the projected token: the retry must read the new one.
printf 'token-after-rotation-%s\n' "$RANDOM" >"$api/token"
wait_until 15 "the stopper did not retry after the 403" grep -q 'HTTP 200' "$stopper_log"
reason="$(head -n 1 "$request")"
out="$(cat "$stopper_log")"
[[ $out == *"devbox idle: stop requested: $reason"$'\n'* ]] || fail "the stopper did not log the request's reason ($reason): $out"
[[ $out == *"failed: HTTP 403: "*"is forbidden: User \\\"system:serviceaccount:$namespace:$box_name\\\" cannot patch resource"*$'\n'"devbox idle: retrying in 2s"$'\n'* ]] ||
    fail "the stopper did not log the 403 with the API server's message, then a retry: $out"
[[ $out == *"devbox idle: scaled statefulset $namespace/$box_name to 0 replicas (PATCH .../scale: HTTP 200)" ]] ||
    fail "the stopper did not log the success: $out"
/usr/bin/python3 - "$api/requests.jsonl" "$namespace" "$box_name" "$(cat "$api/token")" <<'EOF' || fail "the requests the API server got are not the scale to 0: $(cat "$api/requests.jsonl")"
import json, sys
path, namespace, name, token = sys.argv[1:]
reqs = [json.loads(line) for line in open(path)]
assert len(reqs) == 2, f"{len(reqs)} requests, expected the 403'd one and its retry"
for i, r in enumerate(reqs):
    headers = {}
    for k, v in r["headers"]:
        assert k.lower() not in headers, f"header {k} twice"
        headers[k.lower()] = v
    assert r["method"] == "PATCH", r["method"]
    assert r["path"] == f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale", r["path"]
    assert r["query"] == {"fieldManager": ["devbox-gen-idle"]}, r["query"]
    assert headers["content-type"] == "application/merge-patch+json", headers
    assert headers["accept"] == "application/json", headers
    assert json.loads(r["body"]) == {"spec": {"replicas": 0}}, r["body"]
    assert headers["authorization"].startswith("Bearer token-"), headers["authorization"]
assert dict(reqs[0]["headers"])["Authorization"] != dict(reqs[1]["headers"])["Authorization"], "the retry reused the old token"
assert dict(reqs[1]["headers"])["Authorization"] == f"Bearer {token}", "the retry did not send the token file's content"
EOF
term_at=$SECONDS
kill -TERM "$stopper"
rc=0
wait "$stopper" || rc=$?
((rc == 0 && SECONDS - term_at <= 2)) || fail "the stopper did not exit promptly and cleanly on SIGTERM (status $rc, $((SECONDS - term_at))s)"
pass "idle-stop.sh (dash, curl) sends PATCH /apis/apps/v1/namespaces/$namespace/statefulsets/$box_name/scale?fieldManager=devbox-gen-idle, merge patch {\"spec\":{\"replicas\":0}}, bearer token re-read after a rotation; logs and retries a 403; exits on SIGTERM"

# The request file is the person's to write: what the stopper logs of it
# must not forge log lines or carry escape sequences.
mkdir -p "$work/forged"
printf 'evil\033[2J\033]0;title\007\rdevbox idle: scaled %s\n%s\n' "$(printf 'x%.0s' {1..300})" "second line" >"$work/forged/stop-requested"
run_stopper "$work/forged" "$work/stopper-forged.log"
wait_until 10 "the stopper did not act on the forged request" grep -qs 'HTTP 200' "$work/stopper-forged.log"
kill -TERM "$stopper"
wait "$stopper" || true
line="$(grep '^devbox idle: stop requested: ' "$work/stopper-forged.log")" || fail "no stop requested line: $(cat "$work/stopper-forged.log")"
[[ $line == "devbox idle: stop requested: evil[2J]0;titledevbox idle: scaled x"* && ${#line} -le $((29 + 200)) && $line != *$'\e'* ]] ||
    fail "the request's reason was logged unsanitized: $(cat -A <<<"$line")"
(($(grep -c . "$work/stopper-forged.log") == 3)) || fail "the forged request added log lines: $(cat "$work/stopper-forged.log")"
kill "$apiserver"
wait "$apiserver" 2>/dev/null || true
pass "the stopper logs a request's reason as one line of at most 200 characters, control characters removed"

# The wake CronJob's script, from the bundle, under dash with the host's curl,
# as its pod runs it: the token, CA and namespace where the kubelet projects
# them (a private mount namespace over /run, so /var/run/secrets/... is its
# own), KUBERNETES_SERVICE_HOST/PORT as every container gets them. The files
# have the owners and modes the kubelet gives them (pkg/volume/projected:
# only the token is chowned, to the pod's one runAsUser, mode 0600; the
# configMap and downwardAPI items stay root's with the volume's defaultMode,
# made group-readable for the pod's fsGroup, if it has one, which the process
# then has as a supplementary group).
wake_script="$(/usr/bin/python3 -c '
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
spec = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
(c,) = spec["containers"]
assert c["command"][:2] == ["/bin/sh", "-c"], c["command"]
(volume,) = [v for v in spec["volumes"] if v["name"] == c["volumeMounts"][0]["name"]]
pod = spec.get("securityContext", {})
print(spec["serviceAccountName"], pod["runAsUser"], pod.get("fsGroup", "none"), "%o" % volume["projected"]["defaultMode"])
print(c["command"][2], end="")
' "$bundle/cronjob-tester-wake.yaml")" || fail "the bundle has no wake CronJob running one sh -c script"
read -r wake_account wake_uid wake_fs_group wake_mode <<<"$(head -n 1 <<<"$wake_script")"
wake_script="$(tail -n +2 <<<"$wake_script")"
wake_api="$work/apiserver-wake"
mkdir -p "$wake_api"
printf 'wake-token-%s\n' "$RANDOM" >"$wake_api/token"
/usr/bin/python3 "$here/apiserver.py" --dir "$wake_api" --token-file "$wake_api/token" \
    --user "system:serviceaccount:$namespace:$wake_account" 2>"$wake_api/log" &
apiserver=$!
wait_until 20 "the stand-in API server did not start: $(cat "$wake_api/log")" test -s "$wake_api/port"
sa_dir=/var/run/secrets/kubernetes.io/serviceaccount
rc=0
# shellcheck disable=SC2016 # the inner script's $1..$7 are its own arguments
env -i PATH=/usr/bin:/bin KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$(cat "$wake_api/port")" \
    unshare --mount --propagation private -- /bin/sh -c '
        mount -t tmpfs tmpfs /run && mkdir -p "$1" &&
        cp "$2/token" "$2/ca.crt" "$1/" && printf %s "$3" >"$1/namespace" &&
        chown "$5" "$1/token" && chmod 0600 "$1/token" && chmod "$7" "$1/ca.crt" "$1/namespace" &&
        if [ "$6" != none ]; then
            chgrp "$6" "$1/ca.crt" "$1/namespace" && chmod g+r "$1/ca.crt" "$1/namespace" && groups="--groups $6"
        else
            groups=--clear-groups
        fi &&
        exec setpriv --reuid "$5" --regid "$5" $groups dash -c "$4"' \
    wake "$sa_dir" "$wake_api" "$namespace" "$wake_script" "$wake_uid" "$wake_fs_group" "$wake_mode" >"$work/wake.out" 2>&1 || rc=$?
kill "$apiserver"
wait "$apiserver" 2>/dev/null || true
((rc == 0)) || fail "the wake script failed (status $rc): $(cat "$work/wake.out")"
/usr/bin/python3 - "$wake_api/requests.jsonl" "$namespace" "$box_name" "$(cat "$wake_api/token")" <<'EOF' || fail "the wake script's request is not the scale to 1: $(cat "$wake_api/requests.jsonl")"
import json, sys
path, namespace, name, token = sys.argv[1:]
(r,) = [json.loads(line) for line in open(path)]
headers = {k.lower(): v for k, v in r["headers"]}
assert len(headers) == len(r["headers"]), "a header twice"
assert r["method"] == "PATCH", r["method"]
assert r["path"] == f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale", r["path"]
assert r["query"] == {"fieldManager": ["devbox-gen-schedule"]}, r["query"]
assert headers["content-type"] == "application/merge-patch+json", headers
assert json.loads(r["body"]) == {"spec": {"replicas": 1}}, r["body"]
assert headers["authorization"] == f"Bearer {token}", headers["authorization"]
EOF
grep -q '"replicas": *1' "$work/wake.out" || fail "the wake script did not print the API server's answer: $(cat "$work/wake.out")"
pass "the wake CronJob's script (dash, curl, as uid $wake_uid with $wake_account's projected token, CA and namespace as the kubelet lays them out) sends PATCH .../statefulsets/$box_name/scale?fieldManager=devbox-gen-schedule, merge patch {\"spec\":{\"replicas\":1}}"

# The watcher, if it dies, is restarted by start.sh's refresh loop; a new
# watcher removes the request of the old one and counts its start as activity.
# (As the kernel's OOM killer would: from outside, with SIGKILL.)
watcher_pod_pid="$(awk '/^NSpid:/ {print $NF}' "/proc/$watcher_pid/status")" # its pid in the pod
kill -KILL "$watcher_pid" || fail "could not kill idle.py"
wait_until 10 "start.sh did not restart the watcher" in_pod_log -F "devbox: warning: the idle watcher (pid $watcher_pod_pid) is gone; restarting it"
wait_until 5 "the new watcher did not remove the old stop request" no_request
in_pod_log '^devbox: idle: removed the stop request of an earlier run' || fail "the removal is not logged"
keeps_running $((idle_after - 1)) "the new watcher's start"
wait_until $((idle_after + 5)) "the new watcher did not ask to stop" test -e "$request"
pass "a killed watcher is restarted by start.sh; the new one withdraws the old request and waits ${idle_after}s from its own start"

# --- 12. shutdown ----------------------------------------------------------------------
init="$(cat "$work/pods/$pod/init.pid")"
pidns="$(readlink "/proc/$init/ns/pid")"
stop_pod
left=()
for p in /proc/[0-9]*; do
    [[ "$(readlink "$p/ns/pid" 2>/dev/null)" != "$pidns" ]] || left+=("${p#/proc/}")
done
((${#left[@]} == 0)) || fail "processes of the pod are left: ${left[*]}"
[[ "$(cksum </etc/passwd)" == "$passwd_sum" ]] || fail "the host's /etc/passwd changed"
pass "the container stops on SIGTERM and leaves no process; the host's /etc/passwd is untouched"

say "all $step_no steps passed in $((SECONDS - started_at))s"
