# Shared by .ci/conformance.sh and .ci/inspector.sh (sourced, with TOOL set to the caller's name):
# a pinned Node 22 plus the conformance suite and the Inspector in .ci/node (gitignored), and the
# sheepcrm-mcp binary to test.
NODE_VERSION=22.23.3
CONFORMANCE_VERSION=0.1.16
INSPECTOR_VERSION=2.12.0
NODE_DIR=.ci/node

install_node_tools() {
  local arch pkg stamp
  case "$(uname -m)" in
    x86_64|amd64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "$TOOL: no Node package for $(uname -m)" >&2; exit 2 ;;
  esac
  pkg="node-linux-$arch"
  stamp="$NODE_DIR/.installed-$pkg-$NODE_VERSION-$CONFORMANCE_VERSION-$INSPECTOR_VERSION"
  if [ ! -f "$stamp" ]; then
    command -v npm >/dev/null || { echo "$TOOL: npm is required" >&2; exit 2; }
    rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
    echo '{"private": true}' > "$NODE_DIR/package.json"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
      "$pkg@$NODE_VERSION" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
      "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
    touch "$stamp"
  fi
  export PATH="$PWD/$NODE_DIR/node_modules/$pkg/bin:$PWD/$NODE_DIR/node_modules/.bin:$PATH"
  hash -r
  node --version >&2
}

server_bin() {
  if [ -n "${SHEEPCRM_MCP_BIN:-}" ]; then echo "$SHEEPCRM_MCP_BIN"; return; fi
  local venv="${SHEEPCRM_VENV:-.venv}"
  if [ -x "$venv/bin/sheepcrm-mcp" ]; then echo "$PWD/$venv/bin/sheepcrm-mcp"; return; fi
  command -v sheepcrm-mcp || { echo "$TOOL: sheepcrm-mcp not found (bash dev.sh test installs it)" >&2; exit 2; }
}

cleanup() {
  if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}

prepare() {
  install_node_tools
  BIN="$(server_bin)"
  PY="$(dirname "$BIN")/python"
  [ -x "$PY" ] || PY=python3
  WORK="$(mktemp -d)"
  SERVER_PID=""
  trap cleanup EXIT
}

serve_http_as_person() {  # TOKEN: sets SERVE_HTTP, the command that serves HTTP as the person starts it
  # The server serves HTTP only when the person's own settings file says so (and names a token given to it); that
  # file is found from the account database, so a private one is named through tests/person_browser.py.
  mkdir -m 700 -p "$WORK/person"
  (umask 077; printf 'SHEEPCRM_TRANSPORT=http\nSHEEPCRM_MCP_TOKEN=%s\n' "$1" >"$WORK/person/settings.env")
  export PERSON_SETTINGS="$WORK/person/settings.env"
  SERVE_HTTP=("$PY" -I tests/person_browser.py "$WORK/person/launches.txt")
}

wait_healthy() {  # PORT LOGFILE: wait for /healthz, or show the server's log and fail
  "$PY" - "$1" <<'PY' || { cat "$2" >&2; exit 1; }
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/healthz"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"server at {url} did not come up")
PY
}
