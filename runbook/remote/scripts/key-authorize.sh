# shellcheck shell=sh
# authorize LINE FILE (steps/transfer.py, steps/rollbackkey.py): LINE in the authorized_keys FILE,
# once.
set -e; umask 077; mkdir -p "$(dirname "$2")"; touch "$2"; grep -qxF "$1" "$2" || printf "%s\n" "$1" >> "$2"
