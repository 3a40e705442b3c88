# shellcheck shell=sh
# keygen KEY COMMENT (steps/transfer.py, steps/rollbackkey.py): a fresh ed25519 key KEY, KEY.pub
# with the comment, private to root.
umask 077; mkdir -p /root/.ssh; rm -f "$1" "$1.pub"; ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1"
