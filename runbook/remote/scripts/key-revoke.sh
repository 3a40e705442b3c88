# shellcheck shell=sh
# revoke COMMENT FILE (steps/transfer.py, steps/rollbackkey.py): every line of the authorized_keys
# FILE that holds COMMENT goes; the file keeps its owner and mode.
set -e; f="$2"; [ -e "$f" ] || exit 0; grep -vF "$1" "$f" > "$f.runbook-tmp" || true; cat "$f.runbook-tmp" > "$f"; rm -f "$f.runbook-tmp"
