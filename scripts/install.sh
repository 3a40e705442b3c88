#!/usr/bin/env bash
# Installs everything the runbook engine, its lab and its tests need, idempotently.
# Debian 12, as root. Starts no service: policy-rc.d keeps apt from starting daemons on every interface.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  openssh-server openssh-client bind9 bind9-dnsutils unbound busybox-static
  docker.io docker-compose pebble apache2 varnish dovecot-imapd dovecot-lmtpd postfix
  dovecot-sieve dovecot-managesieved opendkim opendkim-tools  # the old host's Sieve, ManageSieve and DKIM (lab/mail.py, lab/dkim.py)
  rsync borgbackup prometheus-blackbox-exporter prometheus pdns-server pdns-backend-sqlite3 certbot python3-certbot-apache sudo mariadb-server mariadb-client openssl iproute2 procps curl
  python3 python3-venv python3-pip tmux socat util-linux debootstrap
  wordpress wordpress-theme-twentytwentythree libapache2-mod-php8.2 php8.2-fpm php8.2-mysql php8.2-cli cron  # the old host's PHP apps (lab/apps.py)
  chromium  # headless screenshot of the cutover report (tests)
  shellcheck  # lints the scripts that run on the servers (tests/unit/test_remote_scripts.py)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: apt packages: ${missing[*]}"
  if [ ! -x /usr/sbin/policy-rc.d ] || ! grep -q 'exit 101' /usr/sbin/policy-rc.d; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install: apt packages present"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'
echo "install: python environment ready in .venv"
