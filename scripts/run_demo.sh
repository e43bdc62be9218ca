#!/usr/bin/env bash
# The main job's body: the demo (pam_ros.tools.demo.run_demo) on the install tree that
# scripts/setup.sh built. RANDOM_WEIGHTS=1 adds --random-weights; other arguments go to the demo.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=/dev/null
source "$REPO/scripts/env.sh"
extra=()
if [ "${RANDOM_WEIGHTS:-0}" = "1" ]; then
  extra+=(--random-weights)
fi
exec python -m pam_ros.tools.demo.run_demo "${extra[@]}" "$@"
