# shellcheck shell=sh
# sudoers RULE FILE (steps/transfer.py, steps/rollbackkey.py): RULE written to the sudoers drop-in
# FILE only if visudo accepts it (a broken one would lock sudo out).
set -e; umask 0337; printf "%s" "$1" > "$2.runbook-tmp"; if ! visudo -cqf "$2.runbook-tmp"; then rm -f "$2.runbook-tmp"; echo "visudo refuses the rule" >&2; exit 1; fi; mv -f "$2.runbook-tmp" "$2"
