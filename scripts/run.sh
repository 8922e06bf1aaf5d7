#!/usr/bin/env bash
# Sets up and runs katakana-scorer on its embedded defaults: SQLite, an embedded Redis, Celery
# scoring, pre-flight and email workers with beat, the synthetic test set and demo accounts (printed below),
# at http://127.0.0.1:8000; a worker that dies is started again.
# Ctrl-C stops everything. Data lives in ./var/ and survives restarts.
# Both runtimes are built (the TensorFlow one: ~1.9 GB, a few minutes, once per machine as root);
# scripts/run.sh --without-tensorflow skips it, and Keras submissions are then refused at the check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
.venv/bin/python -m app.cli demo
exec .venv/bin/python -m app.cli serve
