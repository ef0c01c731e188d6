#!/usr/bin/env bash
# The one test command (README, CI): creates .venv, installs the project with its dev
# extras, then runs every gate: ruff check, ruff format --check, mypy --strict,
# scripts/regen.sh --check and pytest (warnings are errors, branch coverage on
# wandb_inference/). Extra arguments go to pytest, e.g. `scripts/test.sh -k stream`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv dev

step() { printf '\n==> %s\n' "$*"; }
step "ruff check";          ruff check wandb_inference tests scripts benchmarks
step "ruff format --check"; ruff format --check wandb_inference tests scripts benchmarks README.md
step "mypy --strict";       mypy
step "regen.sh --check";    scripts/regen.sh --check
step "gen_constructors.py --check"; python scripts/gen_constructors.py --check
step "pytest";              python -m pytest --cov --cov-report=term "$@"
