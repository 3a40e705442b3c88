# shellcheck shell=sh
# borg REPO ARGS..., after the passphrase line (steps/backup.py): `borg ARGS... REPO`.
set -eu
repo=$1; shift
borg "$@" "$repo"
