#!/usr/bin/env bash
# One entry point for people and CI:
#   bash dev.sh demo    - install (once) and run the scripted demo against the embedded sandbox
#   bash dev.sh test    - install (once) and run lint, types, the test suite and the reliability suite
#   bash dev.sh bench   - install (once) and run the benchmarks
#   bash dev.sh lint    - ruff, mypy (strict) and the import-layer contracts only
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SHEEPCRM_VENV:-.venv}"
PY="${PYTHON:-python3}"

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ] || [ constraints.txt -nt "$VENV/.installed" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,bench]"
    touch "$VENV/.installed"
  fi
}

# mypy and import-linter cannot follow the editable install's import hook: give them the package
# as it is installed (sheepcrm_mcp = app/, with tools/, server/, sheepcrm/, sandbox/ inside) as symlinks.
typeview() {
  local view=.typeview/sheepcrm_mcp
  rm -rf .typeview && mkdir -p "$view"
  for f in app/*.py; do ln -s "../../$f" "$view/"; done
  for d in tools server sheepcrm sandbox; do ln -s "../../$d" "$view/$d"; done
}

lint() {
  typeview
  "$VENV/bin/ruff" check .
  "$VENV/bin/mypy"
  PYTHONPATH=.typeview "$VENV/bin/lint-imports"
}

cmd="${1:-test}"; shift || true
install
case "$cmd" in
  demo) exec "$VENV/bin/sheepcrm-mcp" demo "$@" ;;
  lint) lint ;;
  test)
    lint
    "$VENV/bin/python" -m pytest "$@"
    exec "$VENV/bin/python" -m pytest -m "reliability or slow or cluster" "$@" ;;
  bench) exec "$VENV/bin/python" -m bench "$@" ;;
  *) echo "usage: bash dev.sh demo|test|bench" >&2; exit 2 ;;
esac
