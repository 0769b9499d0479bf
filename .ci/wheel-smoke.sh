#!/usr/bin/env bash
# The product as it is shipped: build the sdist and the wheel (the wheel from the sdist, so a file missing from
# either fails), check their metadata and contents, install the wheel (not editable) into a fresh venv outside the
# repository, and run it from there: --version, doctor --sandbox, the demo and one stdio client session. Meanwhile
# (they need nothing built here, and each mostly waits on its own pip) the other documented install forms that need
# no package index: a git URL and a checkout with pipx.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
TOOLS_VENV="$(cd "$REPO" && realpath -m "${SHEEPCRM_VENV:-.venv}")"   # dev.sh's venv: build and twine
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$WORK"' EXIT
say() { printf '\n== %s\n' "$*"; }

VERSION="$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO/pyproject.toml")"

say "build sdist and wheel ($VERSION)"
"$TOOLS_VENV/bin/python" -m build --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
ls -1 "$WORK/dist"
"$TOOLS_VENV/bin/twine" check --strict "$WORK"/dist/*
WHEEL="$(ls "$WORK"/dist/*.whl)"
"$PY" "$REPO/.ci/check_wheel.py" "$WHEEL" "$REPO"

# The other documented install forms run alongside the rest, outside the repository, each logging to its own file.
git clone -q "$REPO" "$WORK/checkout"
(
  cd "$WORK" && unset PYTHONPATH
  "$PY" -m venv "$WORK/venv-git"
  "$WORK/venv-git/bin/pip" install -q --disable-pip-version-check -c "$REPO/constraints.txt" "git+file://$REPO"
  "$WORK/venv-git/bin/sheepcrm-mcp" --version
) >"$WORK/git.log" 2>&1 &
GIT_INSTALL=$!
(
  cd "$WORK" && unset PYTHONPATH
  "$PY" -m venv "$WORK/venv-pipx"
  "$WORK/venv-pipx/bin/pip" install -q --disable-pip-version-check pipx
  PIPX_HOME="$WORK/pipx" PIPX_BIN_DIR="$WORK/pipx-bin" PIP_CONSTRAINT="$REPO/constraints.txt" \
    "$WORK/venv-pipx/bin/pipx" install --quiet "$WORK/checkout" >/dev/null
  "$WORK/pipx-bin/sheepcrm-mcp" --version
) >"$WORK/pipx.log" 2>&1 &
PIPX_INSTALL=$!

say "install the wheel into a fresh venv outside the repository"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check -c "$REPO/constraints.txt" "$WHEEL"
cd "$WORK"   # the repository's files are out of reach from here on
unset PYTHONPATH
BIN="$WORK/venv/bin/sheepcrm-mcp"
GOT="$("$BIN" --version)"
[ "$GOT" = "sheepcrm-mcp $VERSION" ] || { echo "--version says '$GOT', pyproject.toml says $VERSION"; exit 1; }
echo "$GOT"
"$WORK/venv/bin/python" - <<'PY'
import importlib.util
generic = [name for name in ("server", "tools", "sandbox", "app") if importlib.util.find_spec(name)]
assert not generic, f"the install adds generic top-level modules: {generic}"
print("no generic top-level modules (server, tools, sandbox, app)")
PY
"$WORK/venv/bin/python" -m sheepcrm_mcp --version >/dev/null

say "doctor --sandbox"
"$BIN" doctor --sandbox

say "demo"
"$BIN" demo >"$WORK/demo.log" 2>&1 || { tail -40 "$WORK/demo.log"; exit 1; }
tail -3 "$WORK/demo.log"

say "one stdio client session"
"$WORK/venv/bin/python" - "$BIN" <<'PY'
import sys

import anyio
from mcp import Client, StdioServerParameters


async def main() -> None:
    params = StdioServerParameters(command=sys.argv[1], args=["--sandbox", "--read-only"], env={"PATH": "/usr/bin:/bin"})
    async with Client(params, mode="legacy") as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("search_contacts", {"query": "austen"})
        assert not result.is_error, result
        contacts = result.structured_content["contacts"]
        assert contacts and contacts[0]["uri"].startswith("/demo/person/"), contacts
        print(f"stdio session: {len(tools)} tools, search_contacts found {contacts[0]['name']}")


anyio.run(main)
PY

say "installed from a git URL (pip install git+file://), alongside the steps above"
wait "$GIT_INSTALL" || { cat "$WORK/git.log"; echo "the install from a git URL failed"; exit 1; }
cat "$WORK/git.log"

say "installed from a checkout with pipx (pipx install .), in a fresh clone so no build/ is left behind"
wait "$PIPX_INSTALL" || { cat "$WORK/pipx.log"; echo "the install from a checkout with pipx failed"; exit 1; }
cat "$WORK/pipx.log"

say "wheel smoke test passed"
