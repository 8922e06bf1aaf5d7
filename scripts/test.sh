#!/usr/bin/env bash
# The whole test suite, on a clean machine: installs what it needs, lints, type-checks, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/scorer -k sandbox). The inner loop is
# scripts/test.sh --fast: the same checks, then only the tests that need no sandbox, browser,
# PostgreSQL or live service (tests/fixtures/markers.py). CI runs it with no arguments: everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
echo "[test] ruff"; ruff check .; ruff format --check .
echo "[test] mypy"; mypy
echo "[test] import layers"; lint-imports
echo "[test] pytest"
# Four workers for the whole suite, more than CI's 2 cores: much of it waits on real processes (the
# sandbox, the live service). The fast part hardly waits: one worker per core, as each extra worker
# only adds its own start-up (imports, collection).
workers="${PYTEST_WORKERS:-4}"
for arg in "$@"; do [[ "$arg" == --fast ]] && workers="${PYTEST_WORKERS:-$(nproc)}"; done
exec python -m pytest -n "$workers" --dist loadgroup "$@"
