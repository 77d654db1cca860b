#!/usr/bin/env bash
# The Python package's tests: a private venv (.venv-py, or the active one with VENV=active)
# with maturin, numpy and pytest, the package built in place from python/ (`maturin develop`,
# the cargo dev profile, so the Rust build is shared with `cargo build`), then pytest. The
# tests compare the package with the CLI, which they build when target/debug/msenas is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv-py}"
if [ "$venv" = active ]; then
  py=python3
  : "${VIRTUAL_ENV:?VENV=active needs an active virtualenv}"
else
  case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
  [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
  py="$venv/bin/python3"
  export VIRTUAL_ENV="$venv"
fi
"$py" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2" numpy pytest
cargo build --quiet
(cd python && "$py" -m maturin develop --quiet)
"$py" -m pytest -q python/tests "$@"
