#!/usr/bin/env bash
# Packs one release binary under the names that cargo binstall (Cargo.toml's
# [package.metadata.binstall]), the CI templates and the README's Install section download:
#   OUTDIR/devbox-gen-VERSION-TARGET.tar.gz          the binary alone, at the archive's root
#   OUTDIR/devbox-gen-VERSION-TARGET.tar.gz.sha256   its checksum, `sha256sum -c` input
#
#   bash release/package.sh VERSION TARGET BINARY OUTDIR
# Run by .github/workflows/release.yml on each build runner (Linux and macOS), and by
# tests/integration/version.rs, which checks the names against the binstall metadata.
set -euo pipefail
[ "$#" -eq 4 ] || { echo "usage: $0 VERSION TARGET BINARY OUTDIR" >&2; exit 2; }
version="$1" target="$2" binary="$3" out="$4"
archive="devbox-gen-$version-$target.tar.gz"

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
cp "$binary" "$staging/devbox-gen"
chmod 0755 "$staging/devbox-gen"
# The build runner's user means nothing where the archive is unpacked; root:root keeps a
# `sudo tar -x` from handing the binary to whatever uid the runner had. macOS's bsdtar
# lacks the GNU flags.
owner=()
if tar --version 2> /dev/null | grep -q 'GNU tar'; then
    owner=(--owner=0 --group=0 --numeric-owner)
fi
mkdir -p "$out"
tar -czf "$out/$archive" ${owner[@]+"${owner[@]}"} -C "$staging" devbox-gen

cd "$out"
if command -v sha256sum > /dev/null; then
    sha256sum "$archive" > "$archive.sha256"
else
    shasum -a 256 "$archive" > "$archive.sha256" # macOS: same "HASH  NAME" line
fi
cat "$archive.sha256"
