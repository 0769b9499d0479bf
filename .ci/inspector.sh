#!/usr/bin/env bash
# The MCP Inspector's CLI (@modelcontextprotocol/inspector --cli), a real outside client, against
#   - `sheepcrm-mcp --sandbox` over stdio: tools/list, tools/call search_contacts, resources/list,
#     prompts/list, and a call to a tool that does not exist (must fail);
#   - `sheepcrm-mcp --sandbox --transport http` with a bearer token: tools/list with the token,
#     and without it (must be refused).
# Exit 0 when all behave. Needs npm; installs a pinned Node 22 and the Inspector into .ci/node
# (gitignored) on first run. SHEEPCRM_MCP_BIN overrides the server binary.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL=inspector
# shellcheck source=node-tools.sh
source .ci/node-tools.sh

prepare  # sets BIN, PY, WORK, SERVER_PID; cleans up on exit
# Keep the Inspector's catalog and our audit log out of the real home directory.
export HOME="$WORK" MCP_CATALOG_PATH="$WORK/catalog.json" SHEEPCRM_AUDIT_LOG="$WORK/audit.jsonl"
FAILED=0

inspect() {  # $1 = name, $2 = python check of the JSON answer (variable `a`), rest = inspector args
  local name="$1" check="$2"; shift 2
  if ! timeout 120 inspector --cli "$@" >"$WORK/$name.json" 2>"$WORK/$name.err"; then
    echo "inspector: FAIL $name: the Inspector exited non-zero" >&2
    tail -20 "$WORK/$name.err" >&2
    FAILED=1
    return
  fi
  if "$PY" -c "import json, sys; a = json.load(open(sys.argv[1])); assert $check, json.dumps(a)[:2000]" \
      "$WORK/$name.json" 2>"$WORK/$name.check"; then
    echo "inspector: ok   $name"
  else
    echo "inspector: FAIL $name" >&2
    tail -5 "$WORK/$name.check" >&2
    FAILED=1
  fi
}

must_fail() {  # $1 = name, $2 = text the error must contain, rest = inspector args
  local name="$1" expected="$2"; shift 2
  if timeout 120 inspector --cli "$@" >"$WORK/$name.out" 2>&1; then
    echo "inspector: FAIL $name: expected an error, got success" >&2
    head -c 1000 "$WORK/$name.out" >&2
    FAILED=1
  elif ! grep -q "$expected" "$WORK/$name.out"; then
    echo "inspector: FAIL $name: the error does not mention $expected" >&2
    head -c 1000 "$WORK/$name.out" >&2
    FAILED=1
  else
    echo "inspector: ok   $name (refused: $(tr -d "\n" < "$WORK/$name.out" | head -c 160))"
  fi
}

STDIO=("$BIN" --sandbox)
inspect stdio-tools-list \
  'len(a["tools"]) >= 10 and "search_contacts" in {t["name"] for t in a["tools"]} and all((t.get("annotations") or {}).get("openWorldHint") is False for t in a["tools"])' \
  "${STDIO[@]}" --method tools/list
inspect stdio-search-contacts \
  'a["isError"] is False and any("Austen" in c["name"] for c in a["structuredContent"]["contacts"])' \
  "${STDIO[@]}" --method tools/call --tool-name search_contacts --tool-arg query=austen
inspect stdio-resources-list 'isinstance(a["resources"], list)' "${STDIO[@]}" --method resources/list
inspect stdio-prompts-list 'isinstance(a["prompts"], list)' "${STDIO[@]}" --method prompts/list
must_fail stdio-unknown-tool tool_not_found "${STDIO[@]}" --method tools/call --tool-name no_such_tool

# Streamable HTTP with a bearer token (enforced whenever SHEEPCRM_MCP_TOKEN is set).
TOKEN="inspector-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
serve_http_as_person "$TOKEN"
SHEEPCRM_MCP_TOKEN="$TOKEN" "${SERVE_HTTP[@]}" --sandbox --transport http --port "$PORT" 2>"$WORK/server.log" &
SERVER_PID=$!
wait_healthy "$PORT" "$WORK/server.log"
URL="http://127.0.0.1:$PORT/mcp"
inspect http-tools-list '"search_contacts" in {t["name"] for t in a["tools"]}' \
  "$URL" --transport http --header "Authorization: Bearer $TOKEN" --method tools/list
inspect http-search-contacts 'a["isError"] is False and len(a["structuredContent"]["contacts"]) >= 1' \
  "$URL" --transport http --header "Authorization: Bearer $TOKEN" --method tools/call \
  --tool-name search_contacts --tool-arg query=austen
must_fail http-without-token auth_required "$URL" --transport http --method tools/list

if [ "$FAILED" -ne 0 ]; then
  echo "inspector: some checks failed" >&2
  exit 1
fi
echo "inspector: all checks passed"
