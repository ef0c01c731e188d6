# Sourced by scripts/*.sh: create .venv (Python >= 3.11) and install the project with the
# given extra, re-installing only when pyproject.toml changed since the last install.
ensure_venv() {
  local extra="$1"
  local py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for cand in python3.13 python3.12 python3.11 python3 python; do
      if command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        py="$cand"; break
      fi
    done
  fi
  if [ -z "$py" ]; then
    echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $("$py" --version)"
    "$py" -m venv .venv
  fi
  # shellcheck disable=SC1091
  source .venv/bin/activate
  local stamp=".venv/.installed-$extra"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing wandb-inference[$extra] into .venv"
    python -m pip install --quiet --disable-pip-version-check --upgrade pip
    python -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
    touch "$stamp"
  fi
  # Cache the project's bytecode as a wheel install would (pip compiles what it installs;
  # an editable install is not, and PYTHONDONTWRITEBYTECODE=1 would have every fresh
  # interpreter compile the sources again). Only changed files are compiled.
  python -m compileall -q wandb_inference generated/wandb_inference_generated >/dev/null || true
}
