#!/usr/bin/env bash
# The benchmark suite: wandb_inference (both transports) vs raw httpx, raw aiohttp,
# httpx-aiohttp and the openai SDK (both transports), in one run, against a fast fake
# server on a core of its own (benchmarks/_fastserver.py).
#   scripts/bench.sh --quick     (about 5 minutes)
#   scripts/bench.sh             (full)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv bench
exec python benchmarks/run.py "$@"
