#!/usr/bin/env bash
# Refreshes the ReDoc bundle served at /redoc/ from the npm registry.
# Usage: scripts/vendor-redoc.sh [version]   (default: the pinned 2.5.4)
set -euo pipefail
version="${1:-2.5.4}"
dest="$(cd "$(dirname "$0")/.." && pwd)/crates/lty-server/assets/redoc"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "redoc@${version}" >/dev/null && tar xzf redoc-*.tgz)
cp "$tmp/package/bundles/redoc.standalone.js" \
   "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" \
   "$tmp/package/LICENSE" "$dest/"
echo "$version" > "$dest/VERSION"
echo "vendored redoc ${version} into ${dest}"
