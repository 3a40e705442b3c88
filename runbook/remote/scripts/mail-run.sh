#!/bin/sh
# The mail container's init, written by runbook: Postfix + Dovecot, and a watch that installs the
# dumped certificate for Dovecot and Postfix (main.cf names the same files) and reloads both
# whenever the certificate changes.
set -u
# a container started again keeps its /run: nothing of the last start runs now, so its pid files
# are stale (Dovecot refuses to start while a process has the PID its file names)
rm -f /run/dovecot/master.pid /var/spool/postfix/pid/master.pid /run/opendkim/opendkim.pid
CERT_DIR=/certs/"$MAIL_HOST"
TLS=/etc/dovecot/tls
mkdir -p "$TLS"
# the hash of the dumped files that are installed: taken before copying, so a dump that lands
# while Dovecot starts (or while copying) is still seen as a change by the watch below
installed=none
install_cert() {
  if [ -s "$CERT_DIR/fullchain.crt" ] && [ -s "$CERT_DIR/privkey.key" ]; then
    hash=$(cat "$CERT_DIR/fullchain.crt" "$CERT_DIR/privkey.key" | sha256sum)
    cp "$CERT_DIR/fullchain.crt" "$TLS/fullchain.pem.new" && cp "$CERT_DIR/privkey.key" "$TLS/privkey.pem.new" \
      && chmod 600 "$TLS/privkey.pem.new" && mv "$TLS/privkey.pem.new" "$TLS/privkey.pem" \
      && mv "$TLS/fullchain.pem.new" "$TLS/fullchain.pem" && installed=$hash && return 0
  fi
  return 1
}
if ! install_cert; then
  # until the dumper has the ACME certificate: a throw-away one, replaced as soon as it appears
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$MAIL_HOST" \
    -keyout "$TLS/privkey.pem" -out "$TLS/fullchain.pem" >/dev/null 2>&1
fi
cp /etc/runbook/main.cf /etc/postfix/main.cf
# doveadm and doveconf without -c (a shell in the container, the next upgrade's steps) read the
# configuration Dovecot runs with
ln -sf /etc/runbook/dovecot.conf /etc/dovecot/dovecot.conf
postconf -F '*/*/chroot = n'
# The transport that relays the mail domain to the next host when this host is the source of an
# upgrade (runbook/services/postfix.py RELAY_SERVICE: unused until main.cf routes the domain to it):
# an smtp client with a name of its own, as the next Postfix may have the same myhostname
postconf -M "runbook-relay/unix=runbook-relay unix - - n - - smtp"
postconf -P runbook-relay/unix/myhostname=runbook-relay.invalid runbook-relay/unix/smtp_dns_support_level=disabled
# Members' mail clients: submission (587, STARTTLS required) and submissions (465, implicit TLS),
# both only for those who log in (SASL through Dovecot), as Debian's master.cf comments them.
for service in submission submissions; do
  postconf -M "$service/inet=$service inet n - n - - smtpd"
  postconf -P "$service/inet/syslog_name=postfix/$service" "$service/inet/smtpd_sasl_auth_enable=yes" \
    "$service/inet/smtpd_client_restrictions=permit_sasl_authenticated,reject" \
    "$service/inet/smtpd_relay_restrictions=permit_sasl_authenticated,reject"
done
postconf -P submission/inet/smtpd_tls_security_level=encrypt submissions/inet/smtpd_tls_wrappermode=yes
postfix set-permissions >/dev/null 2>&1 || true
# DKIM (when the old host signed): the old key, pulled by mail/pre-sync, installed as Debian keeps
# it (opendkim's, 0600) for OpenDKIM, which Postfix reaches as its milter (main.cf)
dkim_pid=
if [ -f /etc/runbook/opendkim.conf ]; then
  mkdir -p /etc/dkimkeys /run/opendkim
  cp /etc/runbook/dkim/*.private /etc/dkimkeys/ || exit 1
  chown -R opendkim:opendkim /etc/dkimkeys /run/opendkim && chmod 700 /etc/dkimkeys && chmod 600 /etc/dkimkeys/*
  opendkim -x /etc/runbook/opendkim.conf || exit 1
  dkim_pid=$(cat /run/opendkim/opendkim.pid)
fi
dovecot -c /etc/runbook/dovecot.conf || exit 1
postfix start || exit 1
trap 'postfix stop; doveadm -c /etc/runbook/dovecot.conf stop; [ -z "$dkim_pid" ] || kill "$dkim_pid"; exit 0' TERM INT
while :; do
  sleep 2 & wait $!
  now=$(cat "$CERT_DIR/fullchain.crt" "$CERT_DIR/privkey.key" 2>/dev/null | sha256sum)
  if [ "$now" != "$installed" ] && install_cert; then
    doveadm -c /etc/runbook/dovecot.conf reload && postfix reload >/dev/null 2>&1 \
      && echo "runbook: certificate changed, dovecot and postfix reloaded"
  fi
  doveadm -c /etc/runbook/dovecot.conf service status >/dev/null 2>&1 || pgrep -x dovecot >/dev/null || exit 1
  # a dead signer: the container ends and Docker starts it again (restart: always)
  [ -z "$dkim_pid" ] || kill -0 "$dkim_pid" 2>/dev/null || exit 1
done
