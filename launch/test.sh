#!/usr/bin/env bash
# Sets up the environment and runs the default (fast, CPU, 8 simulated devices) test suite.
# Extra arguments go to pytest, e.g. `bash launch/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh test,reference
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
