#!/usr/bin/env bash
# One entry point for people and CI:
#   bash dev.sh demo    - install (once) and run the scripted demo against the embedded sandbox
#   bash dev.sh test    - install (once) and run lint, types, the test suite and the reliability suite
#   bash dev.sh bench   - install (once) and run the benchmarks
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SHEEPCRM_VENV:-.venv}"
PY="${PYTHON:-python3}"

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ] || [ constraints.txt -nt "$VENV/.installed" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
    touch "$VENV/.installed"
  fi
}

cmd="${1:-test}"; shift || true
install
case "$cmd" in
  demo) exec "$VENV/bin/sheepcrm-mcp" demo "$@" ;;
  test)
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy"
    "$VENV/bin/python" -m pytest "$@"
    exec "$VENV/bin/python" -m pytest -m reliability "$@" ;;
  bench) exec "$VENV/bin/python" -m bench "$@" ;;
  *) echo "usage: bash dev.sh demo|test|bench" >&2; exit 2 ;;
esac
