# shellcheck shell=sh
# manifest VMAIL OUT, on the new host (steps/mail.py, the final sync): every message in the Maildirs
# under VMAIL, in every folder (INBOX and the .Folder ones), as domain/user/<unique name>, one a
# line, into OUT (0600, written whole or not at all).
umask 077; ( cd "$1" && for d in */*/Maildir; do
  for f in "$d"/new/* "$d"/cur/* "$d"/.[!.]*/new/* "$d"/.[!.]*/cur/*; do
    [ -e "$f" ] || continue; b=${f##*/}; printf '%s\n' "${d%/Maildir}/${b%%:*}"
  done
done ) > "$2.tmp" && mv "$2.tmp" "$2"
