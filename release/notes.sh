#!/usr/bin/env bash
# Prints CHANGELOG.md's section for one version without its heading: the GitHub release's
# notes. Fails when the section is missing or empty, so a tag cannot ship without notes.
# With --release it also fails while the heading still says "unreleased", so the release
# workflow refuses a tag whose CHANGELOG was not given its date.
#
#   bash release/notes.sh [--release] VERSION [CHANGELOG]
set -euo pipefail
release=''
if [ "${1:-}" = --release ]; then
    release=1
    shift
fi
[ "$#" -ge 1 ] || { echo "usage: $0 [--release] VERSION [CHANGELOG]" >&2; exit 2; }
version="$1"
changelog="${2:-$(dirname "${BASH_SOURCE[0]}")/../CHANGELOG.md}"

# A section starts at `## VERSION` (anything may follow: a date, "unreleased") and ends at
# the next `## ` heading; blank lines before its first line of text are dropped.
heading="$(awk -v v="$version" '$1 == "##" && $2 == v { print; exit }' "$changelog")"
[ -n "$heading" ] || { echo "$changelog has no \`## $version\` section" >&2; exit 1; }
if [ -n "$release" ] && printf '%s\n' "$heading" | grep -qi unreleased; then
    echo "$changelog: \`$heading\` still says unreleased: give it the release date first" >&2
    exit 1
fi
notes="$(awk -v v="$version" '
    /^## / { if (inside) exit; inside = ($1 == "##" && $2 == v); next }
    inside && (started || NF) { started = 1; print }
' "$changelog")"
[ -n "$notes" ] || { echo "$changelog: the \`## $version\` section is empty" >&2; exit 1; }
printf '%s\n' "$notes"
