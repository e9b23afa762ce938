#!/usr/bin/env bash
# The package's node_modules, from package-lock.json: `npm ci` with the npm cache outside the
# repository, skipped when node_modules was installed from the same lock file.
set -euo pipefail
PKG="$(cd "$(dirname "$0")/.." && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/tier-router"
cd "$PKG"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp="node_modules/.tier-router-lock-sha256"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "[deps] npm ci (cache: $CACHE_ROOT/npm)" >&2
# --ignore-scripts: no native builds are needed to lint, build and test the package (a
# transitive isolated-vm does not build on every machine).
npm ci --ignore-scripts --no-audit --no-fund --cache "$CACHE_ROOT/npm" >&2
echo "$want" >"$stamp"
