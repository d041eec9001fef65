#!/usr/bin/env bash
# Create .venv and install the project into it (with its test extras when
# called as `venv.sh test`). Re-running is cheap when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""; [ "${1:-}" = test ] && extras="[test]"
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".$extras"
  touch "$stamp"
fi
