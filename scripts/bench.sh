#!/usr/bin/env bash
# The benchmark suite: wandb_inference vs raw httpx vs the openai SDK, in one run.
#   scripts/bench.sh --quick     (under 3 minutes)
#   scripts/bench.sh             (full)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv bench
exec python benchmarks/run.py "$@"
