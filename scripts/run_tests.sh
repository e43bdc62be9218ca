#!/usr/bin/env bash
# The test command's body: lint, then the whole pytest suite, against the install tree
# that scripts/setup.sh built. Extra arguments go to pytest (e.g. -k tracker).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=/dev/null
source "$REPO/scripts/env.sh"
echo "[test] ruff check"
ruff check pam_ros test bench launch
echo "[test] pytest"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
