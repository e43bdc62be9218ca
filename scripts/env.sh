# Source me (bash): puts the pam_ros virtual environment and the colcon install tree on the
# paths, as `source /opt/ros/jazzy/setup.bash && source install/setup.bash` does on a real
# ROS 2 install. Run scripts/setup.sh once first.
_pam_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_pam_venv="${PAM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pam_ros/venv}"
if [ ! -x "$_pam_venv/bin/python" ] || [ ! -d "$_pam_repo/install" ]; then
  echo "pam_ros: run scripts/setup.sh first (no venv at $_pam_venv or no install/ tree)" >&2
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV="$_pam_venv"
# launch / launch_testing / message_filters / vision_msgs / tf2 built by scripts/setup.sh where
# no system ROS 2 provides them.
_pam_extras="${PAM_ROS2_EXTRAS:-${XDG_CACHE_HOME:-$HOME/.cache}/pam_ros/ros2_extras}"
if [ -f "$_pam_extras/env.sh" ]; then
  # colcon's local_setup.bash reads unset variables: not under `set -u` (scripts/run_tests.sh)
  _pam_nounset=""; case $- in *u*) _pam_nounset=1; set +u ;; esac
  # shellcheck source=/dev/null
  source "$_pam_extras/env.sh"
  if [ -n "$_pam_nounset" ]; then set -u; fi
fi
export PATH="$_pam_venv/bin:$PATH"
export AMENT_PREFIX_PATH="$_pam_repo/install/pam_ros:$_pam_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_pam_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
_pam_site="$(ls -d "$_pam_repo"/install/pam_ros/lib/python3*/site-packages 2>/dev/null | head -n 1)"
# The source tree first: pam_ros/__init__.py extends its package path to the install tree,
# where the generated pam_ros.msg / pam_ros.srv modules are.
export PYTHONPATH="$_pam_repo:$_pam_site${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$_pam_repo/install/pam_ros/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Keep tests and demos off any real robot network: DDS traffic stays on this host.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
unset _pam_repo _pam_venv _pam_site _pam_extras _pam_nounset
