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
command -v ip >/dev/null || missing+=(iproute2)
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

# --- work directory and cleanup ------------------------------------------------------
work="$(mktemp -d /tmp/devbox-runtime.XXXXXX)"
kubelet=(/usr/bin/python3 "$here/kubelet.py")
passwd_sum="$(cksum </etc/passwd)"

cleanup() {
    local status=$? pod
    trap - EXIT INT TERM
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
# the image must provide") and the VOLUME /home/jupyter of the images the
# bundle has to work around; its sshd applies upstream OpenSSH's StrictModes
# (not Debian's laxer check of group-writable homes). Jupyter is not in it:
# a stub stands in for it (logs its arguments, then sleeps like a server).
cat >"$work/repo/devbox.toml" <<'EOF'
namespace = "devboxes"
[defaults]
image = "registry.example.com/devbox/jupyter:2024.06"
[runtime]
uid = 10001
gid = 10001
EOF
write_user() { # the authorized key files, in order
    local keys=() k
    for k in "$@"; do keys+=("\"$(cat "$work/keys/$k.pub")\""); done
    cat >"$work/repo/users/tester.toml" <<EOF
email = "tester@example.com"
[ssh]
authorized_keys = [$(
        IFS=,
        echo "${keys[*]}"
    )]
[env]
EDITOR = "vim"
EOF
}
build() {
    "$DEVBOX_GEN" -C "$work/repo" build >"$work/build.log" 2>&1 || {
        cat "$work/build.log"
        fail "devbox-gen build failed"
    }
}
bundle="$work/repo/out/tester"
printf '#!/bin/sh\necho "jupyter (stub): $*" >&2\nexec sleep infinity\n' >"$work/jupyter-stub"

start_pod() { # NAME [kubelet.py start options...]
    pod=$1
    shift
    "${kubelet[@]}" start --bundle "$bundle" --pod-dir "$work/pods/$pod" \
        --pv tester-home="$work/pv-tester-home" --secret tester-ssh="$work/secret-tester-ssh" \
        --image-user jupyter:10001:10001:/storage/jupyter:/bin/bash \
        --image-file /usr/local/bin/jupyter="$work/jupyter-stub" --image-volume /home/jupyter \
        --upstream-strict-modes "$@" >>"$work/kubelet.log" 2>&1 ||
        fail "the pod did not start: $(tail -n 20 "$work/kubelet.log")"
    "${kubelet[@]}" ready --pod-dir "$work/pods/$pod" --timeout 30 >>"$work/kubelet.log" 2>&1 ||
        fail "the readinessProbe did not pass within 30s: $(tail -n 5 "$work/kubelet.log")"
}
stop_pod() {
    local how
    how="$("${kubelet[@]}" stop --pod-dir "$work/pods/$pod" --grace 30 2>>"$work/kubelet.log")" ||
        fail "the container did not stop on SIGTERM ($how)"
}

# ssh as a person would, from inside the pod's network namespace (where the
# tailscale sidecar would forward from): the real client, strict host key
# checking against known_hosts, only the given key.
known_hosts="$work/known_hosts"
ssh_opts=(-F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o IdentityAgent=none
    -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)
in_pod_net() { timeout 30 nsenter --target "$(cat "$work/pods/$pod/init.pid")" --net -- "$@"; }
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

# --- 1. a fresh box ------------------------------------------------------------------
write_user old
build
start_pod pod1
pass "bundle built; pod started on a new home volume (kubelet volume layout, fsGroup, read-only root) and its readinessProbe passed"

# The host key the box created on its home volume, trusted from there.
host_pub="$work/pv-tester-home/.devbox/ssh/ssh_host_ed25519_key.pub"
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

out="$(box_tty old 'tty' </dev/null 2>&1)" || fail "an interactive (PTY) session failed: $out"
[[ $out == /dev/pts/* ]] || fail "no terminal in an interactive session: $out"
printf 'data %s\n' "$marker" >"$work/upload"
in_pod_net scp "${ssh_opts[@]}" -P 2222 -i "$work/keys/old" "$work/upload" jupyter@127.0.0.1:upload >/dev/null 2>&1 ||
    fail "scp (SFTP) into the box failed"
[[ "$(box old 'cat ~/upload')" == "data $marker" ]] || fail "the uploaded file differs"
pass "an interactive PTY session and scp (SFTP) work"

out="$(box old 'printf "%s|%s|%s\n" "${EDITOR:-}" "${DEVBOX_NAME:-}" "$PATH"' 2>&1)" || fail "session failed: $out"
[[ $out == "vim|tester|/usr/local/sbin:/usr/local/bin:"* ]] ||
    fail "an SSH session lacks the pod's environment (EDITOR|DEVBOX_NAME|PATH): $out"
pass "SSH sessions get the pod's environment (users/tester.toml [env], the image's PATH)"

# --- 2. key rotation, then a restart on the same home volume -------------------------
write_user new
build
stop_pod
start_pod pod2
expect_refused old "the removed key after the restart"
out="$(box new 'cat ~/marker' 2>&1)" || fail "the new key does not work after the restart: $out"
pass "rotation + rebuild + restart on the same home: the new key works, the removed key is refused"

[[ $out == "$marker" ]] || fail "the file written in \$HOME before the restart is gone: $out"
[[ "$(host_key_fp)" == "$first_fp" ]] || fail "the host key changed across the restart"
pass "the restart kept \$HOME's files and the host key (strict host key checking passed, $first_fp)"

# --- 3. key rotation reaching the running pod ------------------------------------------
# authorized_keys is left out of the pod template's config hash, so in a
# cluster this rebuild restarts nothing: the kubelet rewrites the ConfigMap
# volume in place and start.sh's refresh loop has to pick it up.
sts_before="$(cksum <"$bundle/statefulset-tester.yaml")"
write_user later
build
[[ "$(cksum <"$bundle/statefulset-tester.yaml")" == "$sts_before" ]] ||
    fail "a key change changed the StatefulSet (it would restart the box)"
"${kubelet[@]}" sync-config --pod-dir "$work/pods/$pod" --bundle "$bundle" >>"$work/kubelet.log" 2>&1 ||
    fail "the ConfigMap volume update failed"
deadline=$((SECONDS + 45))
until box later true >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "the added key did not work within 45s of the ConfigMap update"
    sleep 1
done
expect_refused new "the removed key in the running pod"
pass "a rotation reaches the running pod (ConfigMap updated in place, no restart): the new key works, the removed one is refused"

# --- 4. a recursive fsGroup change on the home volume ----------------------------------
# fsGroupChangePolicy Always (or a volume restored from a snapshot) makes
# every file on the home group-writable; sshd's StrictModes would then refuse
# every key unless start.sh repairs the modes.
stop_pod
start_pod pod3 --fs-group-change-policy Always
out="$(box later 'stat -c "%a %n" ~ ~/.ssh ~/.ssh/authorized_keys' 2>&1)" ||
    fail "login failed after a recursive fsGroup change: $out"
[[ $out == $'2755 /storage/jupyter\n2700 /storage/jupyter/.ssh\n600 /storage/jupyter/.ssh/authorized_keys' ]] ||
    fail "unexpected modes: $out"
pass "after a recursive fsGroup change (policy Always) start.sh restores the modes sshd's StrictModes needs"

# --- 5. shutdown ----------------------------------------------------------------------
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
