# shellcheck shell=sh
# A shell function, prepended to borg-safety-net.sh and the new host's repository init
# (steps/backup.py): `open_or_init REPO` opens the repository, or creates it only where there is
# none (missing, or an empty folder); one that the passphrase does not open is an error (return 2,
# as Borg's errors: 1 is only a warning), never made again.

open_or_init() {
  if err=$(borg info "$1" 2>&1 >/dev/null); then return 0; fi
  case "$err" in
    *"does not exist"*) ;;
    *"not a valid repository"*)
      if [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
        echo "runbook: $1 is a non-empty folder but not a Borg repository; refusing to create one there" >&2
        return 2
      fi ;;
    *"passphrase"*"incorrect"*)
      echo "runbook: a Borg repository already exists at $1 and the inventory's passphrase does not open it" \
        "(another repository at that path? check backup.repository and backup.passphrase_file)" >&2
      return 2 ;;
    *) echo "runbook: cannot open the Borg repository $1: $err" >&2; return 2 ;;
  esac
  case "$1" in *:*) ;; *) mkdir -p "$(dirname "$1")" ;; esac
  borg init --encryption=repokey-blake2 "$1" >&2
}
