# shellcheck shell=sh
# shellcheck disable=SC2034  # file, frozen and thawed are this function's results, for the script after it
# A shell function, prepended to hold.sh and facts.sh: `freeze_file PID` sets $file (the freeze
# switch of the process's cgroup), $frozen and $thawed (what to write to it), for cgroup v2 and
# for the v1 freezer.

freeze_file() {
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    file=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$1/cgroup")/cgroup.freeze; frozen=1; thawed=0
  else
    file=/sys/fs/cgroup/freezer$(awk -F: '$2=="freezer"{print $3}' "/proc/$1/cgroup")/freezer.state
    frozen=FROZEN; thawed=THAWED
  fi
}
