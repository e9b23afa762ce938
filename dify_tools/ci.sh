#!/usr/bin/env bash
# The Dify plugin's checks, in their own Python 3.12 environment and pytest process:
#   TIER_ROUTER_PYTHON=/path/to/venv/bin/python bash dify_tools/ci.sh
# TIER_ROUTER_PYTHON is the interpreter of an environment where tier-router is installed
# (default: python3, if it can import classifier_service); the tests start the service with it.
# The 3.12 environment is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/tier-router/, keyed by
# the pins in requirements-dev.txt, and reused while they do not change.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

service_python="${TIER_ROUTER_PYTHON:-python3}"
if ! "$service_python" -c 'import classifier_service' 2>/dev/null; then
    echo "dify_tools/ci.sh: $service_python cannot import classifier_service;" \
         "set TIER_ROUTER_PYTHON to the python of the tier-router environment" >&2
    exit 2
fi
export TIER_ROUTER_PYTHON="$service_python"

find_python312() {
    local candidate
    # DIFY_PYTHON if set; else python3.12 (through pyenv's shim, 3.12.1 as on this machine)
    for candidate in "${DIFY_PYTHON:-}" python3.12; do
        [ -n "$candidate" ] || continue
        if PYENV_VERSION=3.12.1 "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "dify_tools/ci.sh: no Python 3.12 found (dify_plugin needs it); set DIFY_PYTHON" >&2
    return 1
}

key="$(sha256sum requirements-dev.txt | cut -c1-16)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/tier-router/dify-venv-$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    python312="$(find_python312)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    PYENV_VERSION=3.12.1 "$python312" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
    touch "$venv/.complete"
fi

echo "== dify_tools: ruff" && "$venv/bin/ruff" check .
echo "== dify_tools: pytest" && "$venv/bin/python" -m pytest
