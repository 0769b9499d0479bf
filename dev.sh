#!/usr/bin/env bash
# One entry point for people and CI:
#   bash dev.sh demo    - install (once) and run the scripted demo against the embedded sandbox
#   bash dev.sh test    - install (once) and run lint, types, the test suite and the reliability suite
#   bash dev.sh system  - only install (or name) the system parts the tests use (dev.sh test does it first)
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

# The system parts the tests use, installed when missing: Debian's redis-server, redis-tools, haproxy and prometheus
# (the cluster tests, via scripts/cluster.sh install), chromium (the approval page in a real browser), and the local
# OpenID provider (.ci/idp.sh --install: npm ci, plus a pinned Node when the one on PATH is older than 20.19) and
# the test MCP Apps host (.ci/apps-host.sh --install: npm ci and an esbuild bundle).
# apt-get needs root or sudo without a password; without either, nothing runs and the exact command is printed.
system() {
  local apt=() node_ok=0
  command -v redis-server >/dev/null 2>&1 || apt+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || apt+=(redis-tools)
  command -v haproxy >/dev/null 2>&1 || apt+=(haproxy)
  command -v prometheus >/dev/null 2>&1 || apt+=(prometheus)
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || apt+=(chromium)
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
    >/dev/null 2>&1 && node_ok=1
  [ "$node_ok" = 1 ] || command -v npm >/dev/null 2>&1 || apt+=(npm)
  if ((${#apt[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "dev.sh: the tests need ${apt[*]} (Debian package names); install them with your package manager," \
        "then run bash dev.sh test again." >&2
      exit 1
    fi
    if [ "$(id -u)" != 0 ] && ! sudo -n true >/dev/null 2>&1; then
      echo "dev.sh: the tests need Debian packages missing here (${apt[*]}); installing them needs root. Run:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${apt[*]}" >&2
      echo "then bash dev.sh test again. Nothing was run." >&2
      exit 1
    fi
    local rest=()
    for p in "${apt[@]}"; do
      case "$p" in redis-server|redis-tools|haproxy|prometheus) ;; *) rest+=("$p") ;; esac
    done
    bash scripts/cluster.sh install
    if ((${#rest[@]})); then
      local sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo -n)
      local get=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o DPkg::Lock::Timeout=300 --no-install-recommends)
      "${sudo[@]}" "${get[@]}" install "${rest[@]}" >/dev/null 2>&1 ||
        { "${sudo[@]}" apt-get -qq update >/dev/null && "${sudo[@]}" "${get[@]}" install "${rest[@]}" >/dev/null; }
    fi
  fi
  bash .ci/idp.sh --install
  bash .ci/apps-host.sh --install
}

lint() {
  "$VENV/bin/ruff" check .
  "$VENV/bin/mypy"
  "$VENV/bin/lint-imports"
}

cmd="${1:-test}"; shift || true
case "$cmd" in
  system) system; exit 0 ;;
  test) system ;;  # first: when a part is missing and cannot be installed, nothing runs
esac
install
case "$cmd" in
  demo) exec "$VENV/bin/sheepcrm-mcp" demo "$@" ;;
  lint) lint ;;
  test)
    lint
    # The runs write Python's bytecode cache (the gitignored __pycache__ folders) even where PYTHONDONTWRITEBYTECODE
    # is set: without it every pytest-xdist worker compiles every test module again (about 4 s of CPU each) and every
    # server a test starts compiles the package again.
    unset PYTHONDONTWRITEBYTECODE
    # The default run is mostly CPU-bound but waits on subprocesses and browsers too: three workers for two cores
    # (one and a half per core) finish it about a fifth sooner than one per core.
    "$VENV/bin/python" -m pytest -n "$(( $(nproc) * 3 / 2 > 1 ? $(nproc) * 3 / 2 : 1 ))" "$@"
    # The second run mostly waits (timeouts, clusters starting, browsers, Node tools): two workers per core
    # overlap the waits.
    exec "$VENV/bin/python" -m pytest -m "reliability or slow or cluster" -n "$(( $(nproc) * 2 ))" "$@" ;;
  bench) exec "$VENV/bin/python" -m bench "$@" ;;
  *) echo "usage: bash dev.sh demo|test|lint|bench|system" >&2; exit 2 ;;
esac
