#!/usr/bin/env bash
# Regenerate everything derived from openapi/openapi.yaml, with pinned tools.
#
#   scripts/regen.sh           rewrite generated/wandb_inference_generated/ (the models) and
#                              wandb_inference/_spec/ (the facade's parameters, operation table
#                              and the shipped document: scripts/gen_facade.py)
#   scripts/regen.sh --check   exit 1 if any of them is stale or was edited by hand
#
# Pinned versions: the output of a code generator (and of the formatter it runs) changes
# between releases, so regen and --check only run with exactly these.
set -euo pipefail

OPC_VERSION="0.29.1"
RUFF_VERSION="0.17.5"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
spec="openapi/openapi.yaml"
config="openapi/config.yaml"
target="generated/wandb_inference_generated"

mode="write"
case "${1:-}" in
  "") ;;
  --check) mode="check" ;;
  -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
  *) echo "regen.sh: unknown argument '$1' (use --check or nothing)" >&2; exit 2 ;;
esac

# Prefer the tools of the active/project virtual environment.
bindir=""
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/openapi-python-client" ]; then
  bindir="$VIRTUAL_ENV/bin/"
elif [ -x "$root/.venv/bin/openapi-python-client" ]; then
  bindir="$root/.venv/bin/"
fi
opc="${bindir}openapi-python-client"
ruff="${bindir}ruff"
python="${bindir}python"
[ -x "$python" ] || python="python3"
command -v "$opc" >/dev/null 2>&1 || { echo "regen.sh: openapi-python-client not found; run scripts/test.sh once (it installs the dev tools) or pip install -e '.[dev]'" >&2; exit 2; }

have_opc="$("$opc" --version 2>/dev/null | awk '{print $NF}')"
have_ruff="$("$ruff" --version 2>/dev/null | awk '{print $NF}')"
if [ "$have_opc" != "$OPC_VERSION" ] || [ "$have_ruff" != "$RUFF_VERSION" ]; then
  echo "regen.sh: need openapi-python-client $OPC_VERSION and ruff $RUFF_VERSION, found '$have_opc' and '$have_ruff'" >&2
  echo "          (pip install -e '.[dev]' installs the pinned versions)" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The generator's post hooks call `ruff` from PATH: make it the pinned one.
export PATH="$(dirname "$(command -v "$ruff")"):$PATH"
"$opc" generate --path "$spec" --config "$config" --meta none --custom-template-path openapi/templates \
  --output-path "$tmp/out" --fail-on-warning >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; echo "regen.sh: generation failed" >&2; exit 1; }
rm -rf "$tmp/out/.ruff_cache"
touch "$tmp/out/py.typed"

if [ "$mode" = "check" ]; then
  if [ ! -d "$target" ]; then
    echo "regen.sh --check: $target does not exist; run scripts/regen.sh" >&2
    exit 1
  fi
  if ! diff -r -u "$target" "$tmp/out" -x __pycache__ >"$tmp/diff"; then
    head -40 "$tmp/diff" >&2
    echo "regen.sh --check: $target is stale or was edited by hand; run scripts/regen.sh and commit the result" >&2
    exit 1
  fi
  "$python" scripts/gen_facade.py --check || { echo "regen.sh --check: wandb_inference/_spec/ is stale; run scripts/regen.sh" >&2; exit 1; }
  echo "regen.sh --check: generated/ and wandb_inference/_spec/ are current"
  exit 0
fi

mkdir -p generated
rm -rf "$target"
cp -r "$tmp/out" "$target"
echo "regen.sh: wrote $target"
"$python" scripts/gen_facade.py
