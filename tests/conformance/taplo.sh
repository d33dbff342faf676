#!/usr/bin/env bash
# taplo validates the config repo's TOML against the JSON Schemas in schema/.
#
#   taplo.sh REPO            every users/*.toml carries `#:schema ../schema/user.schema.json`
#                            and passes taplo through that line alone (--no-auto-config);
#                            devbox.toml too through its own line; with a .taplo.toml at
#                            REPO, also through its schema rules.
#   taplo.sh --negative REPO files with unknown fields, wrong types or values must be
#                            rejected, through the #:schema line and through .taplo.toml.
set -euo pipefail
negative=false
if [ "${1:-}" = "--negative" ]; then negative=true; shift; fi
repo="$(cd "${1:?usage: taplo.sh [--negative] REPO}" && pwd)"
command -v taplo > /dev/null || { echo "taplo is not installed" >&2; exit 2; }
[ -f "$repo/schema/user.schema.json" ] || { echo "no $repo/schema/user.schema.json" >&2; exit 1; }
export RUST_LOG=error NO_COLOR=1

if ! $negative; then
    cd "$repo"
    shopt -s nullglob
    users=(users/*.toml)
    [ "${#users[@]}" -gt 0 ] || { echo "no users/*.toml in $repo" >&2; exit 1; }
    bad=0
    for f in "${users[@]}"; do
        if [ "$(head -n1 "$f")" != "#:schema ../schema/user.schema.json" ]; then
            echo "FAIL $f: the first line is not \`#:schema ../schema/user.schema.json\`"
            bad=$((bad + 1))
        fi
    done
    files=("${users[@]}")
    [ -f devbox.toml ] && files+=(devbox.toml)
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    if ! taplo check --colors never --no-auto-config "${files[@]}" > "$log" 2>&1; then
        grep -E '^(error|ERROR)' "$log" | head -30
        bad=$((bad + 1))
    fi
    how="the #:schema lines"
    if [ -f .taplo.toml ]; then
        how="$how and .taplo.toml"
        if ! taplo check --colors never --config .taplo.toml "${files[@]}" > "$log" 2>&1; then
            grep -E '^(error|ERROR)' "$log" | head -30
            bad=$((bad + 1))
        fi
    fi
    if [ "$bad" -ne 0 ]; then
        echo "taplo: FAILED"
        exit 1
    fi
    echo "taplo: ${#files[@]} files valid against schema/*.json through $how"
    exit 0
fi

# --negative: each of these must be refused.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/users"
cp -r "$repo/schema" "$tmp/schema"
[ -f "$repo/.taplo.toml" ] && cp "$repo/.taplo.toml" "$tmp/.taplo.toml"
key='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2DHPT+6KPMKbEw5IrfG11A8Vz6y61TuSHbix+l2RTJ t@laptop'
good="email = \"t@example.com\"
[ssh]
authorized_keys = [\"$key\"]"
declare -A cases=(
    [unknown-top-level]="favourite_colour = \"blue\"
$good"
    [unknown-nested]="$good
[gpu]
typ = \"nvidia-l4\""
    [misspelt-table]="$good
[resource]
cpu = \"2\""
    [wrong-type]="$good
[gpu]
type = \"nvidia-l4\"
count = \"1\""
    [bad-enum]="state = \"paused\"
$good"
    [gpu-count-gke-cannot-attach]="$good
[gpu]
type = \"nvidia-l4\"
count = 6"
    [dataset-twice]="datasets = [\"imagenet\", \"imagenet\"]
$good"
    [mps-sharing]="$good
[gpu]
type = \"nvidia-l4\"
sharing = \"mps\""
    [missing-email]="[ssh]
authorized_keys = [\"$key\"]"
)
cd "$tmp"
{ echo "#:schema ../schema/user.schema.json"; echo "$good"; } > users/good.toml
if ! taplo check --colors never --no-auto-config users/good.toml > log 2>&1; then
    cat log; echo "taplo --negative: the valid control file was refused: FAILED"; exit 1
fi
if [ -f .taplo.toml ]; then
    echo "$good" > users/good.toml
    if ! taplo check --colors never --config .taplo.toml users/good.toml > log 2>&1; then
        cat log; echo "taplo --negative: the valid control file was refused through .taplo.toml: FAILED"; exit 1
    fi
    # ...and .taplo.toml really applies the schema (a file it did not match would pass).
    echo "bogus = 1" >> users/good.toml
    if taplo check --colors never --config .taplo.toml users/good.toml > log 2>&1; then
        echo "taplo --negative: .taplo.toml does not apply schema/user.schema.json to users/*.toml: FAILED"; exit 1
    fi
fi
rm -f users/good.toml
bad=0
for name in $(printf '%s\n' "${!cases[@]}" | sort); do
    { echo "#:schema ../schema/user.schema.json"; echo "${cases[$name]}"; } > "users/$name.toml"
    if taplo check --colors never --no-auto-config "users/$name.toml" > log 2>&1; then
        echo "FAIL users/$name.toml was accepted through #:schema"; bad=$((bad + 1))
    elif grep -q 'failed to load schema' log; then
        echo "FAIL users/$name.toml: taplo could not load the schema"; bad=$((bad + 1))
    else
        echo "  refused (#:schema): $name: $(grep -m1 '^error' log || echo '?')"
    fi
    if [ -f .taplo.toml ]; then
        echo "${cases[$name]}" > "users/$name.toml"   # no #:schema line: .taplo.toml's rule applies
        if taplo check --colors never --config .taplo.toml "users/$name.toml" > log 2>&1; then
            echo "FAIL users/$name.toml (no #:schema line) was accepted through .taplo.toml"; bad=$((bad + 1))
        fi
    fi
    rm -f "users/$name.toml"
done
if [ "$bad" -ne 0 ]; then
    echo "taplo --negative: FAILED"
    exit 1
fi
echo "taplo --negative: ${#cases[@]} invalid user files refused; the valid control file accepted"
