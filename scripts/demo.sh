#!/usr/bin/env bash
# The README's first command: set up .venv (once) and run the demo. Against the real
# W&B Inference service when WANDB_API_KEY is set, otherwise against a local server.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv server
exec python -m wandb_inference demo "$@"
