# shellcheck shell=sh
# write PATH MODE, content base64 on stdin (runbook/remote/hosts.py): written atomically (a temporary file
# beside it, then renamed); a symlink is written through; an empty MODE keeps the file's mode.
set -e; t=$(readlink -f -- "$1" || printf %s "$1"); tmp="$t.runbook-tmp"; umask 077; base64 -d > "$tmp"; if [ -n "$2" ]; then chmod "$2" "$tmp"; elif [ -e "$t" ]; then chmod --reference="$t" "$tmp"; fi; mv -f "$tmp" "$t"
