# shellcheck shell=sh
# shellcheck disable=SC2012  # ls -l is for the operator to read, not parsed
# diagnose CERT_DIR CONTAINER DUMPER, on the new host (steps/mail.py): the dumped certificate's
# folder and the last log lines of the mail server and the dumper, on one line.
ls -l "$1" 2>&1 | tail -n 3 | tr "\n" " "; for c in "$2" "$3"; do printf "| %s: " "$c"; docker logs --tail 4 "$c" 2>&1 | tr "\n" " "; done
