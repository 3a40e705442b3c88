# shellcheck shell=sh
# shellcheck disable=SC1091  # /etc/os-release is the host's
# What runs on the old host, read-only, on stdin to `sh -s` (runbook/discover/scan.py): one record a
# line, its kind then base64 fields (`b` encodes one, `bf` a file's content), so that hostile names
# need no quoting. It takes no arguments: every value it reads comes from the host.

b() { printf '%s' "$1" | base64 -w0; }
bf() { base64 -w0 < "$1" 2>/dev/null; }
echo "host $(b "$(hostname 2>/dev/null)") $(b "$(. /etc/os-release 2>/dev/null; echo "$PRETTY_NAME")")"
if command -v apache2ctl >/dev/null 2>&1; then
  S=$(apache2ctl -S 2>&1)
  echo "apache-S $(b "$S")"
  echo "apache-mods $(b "$(ls /etc/apache2/mods-enabled 2>/dev/null)")"
  t=$(mktemp -d)
  printf '%s\n' "$S" | sed -n 's/.*(\(\/[^()]*\):[0-9][0-9]*)[[:space:]]*$/\1/p' | sort -u > "$t/files"
  while IFS= read -r f; do
    [ -r "$f" ] || continue
    echo "vhost-file $(b "$f") $(bf "$f")"
    awk 'tolower($1)=="documentroot" || tolower($1)=="alias" || tolower($1)=="scriptalias" {print $NF}' "$f" \
      | tr -d '"' >> "$t/dirs"
  done < "$t/files"
  sort -u "$t/dirs" 2>/dev/null | while IFS= read -r d; do
    if [ -d "$d" ]; then
      kb=$(du -sk -- "$d" 2>/dev/null | cut -f1)
      php=$(find "$d" -maxdepth 4 -name '*.php' -type f 2>/dev/null | wc -l)
      echo "dir $(b "$d") $(b "$kb") $(b "$php")"
      # applications' configuration: only the lines that name the database host leave the host
      find "$d" -maxdepth 3 -type f \( -name wp-config.php -o -name config.php \) 2>/dev/null | while IFS= read -r f; do
        echo "conf $(b "$f") $(b "$(grep -i -E 'db_?host' -- "$f" 2>/dev/null | head -n 20 | cut -c1-400)")"
      done
    else
      echo "dir $(b "$d") $(b "") $(b "")"
    fi
  done
  rm -rf "$t"
fi
if command -v varnishd >/dev/null 2>&1; then
  ps -C varnishd -o args= 2>/dev/null | while IFS= read -r a; do
    echo "varnishd $(b "$a")"
    vcl=$(printf '%s\n' "$a" | sed -n 's/.*[[:space:]]-f[[:space:]]*\([^[:space:]]*\).*/\1/p')
    case "$vcl" in /etc/varnish/*.vcl) ;; /*) [ -f "$vcl" ] && echo "vcl $(b "$vcl") $(bf "$vcl")";; esac
  done
  for f in /etc/varnish/*.vcl; do [ -f "$f" ] && echo "vcl $(b "$f") $(bf "$f")"; done
fi
ss -Hltnp 2>/dev/null | awk '{print $4, $NF}' | while read -r a p; do echo "listen $(b "$a") $(b "$p")"; done
DB=$(command -v mariadb || command -v mysql)
if [ -n "$DB" ]; then
  Q='SELECT s.schema_name, COALESCE(SUM(t.data_length + t.index_length), 0), COUNT(t.table_name)
     FROM information_schema.schemata s LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name
     GROUP BY s.schema_name'
  if out=$("$DB" -N -B -e "$Q" 2>&1); then
    printf '%s\n' "$out" | while IFS="$(printf '\t')" read -r name size tables; do
      echo "db $(b "$name") $(b "$size") $(b "$tables")"
    done
  else
    echo "db-error $(b "$out")"
  fi
fi
if command -v postconf >/dev/null 2>&1; then
  # what members' mail clients and other servers are offered: master.cf's inet services (25,
  # submission 587, submissions 465 with their -o options), STARTTLS, SASL and the milters
  postconf -M 2>/dev/null | while IFS= read -r line; do
    case "$line" in *" inet "*) echo "smtp-service $(b "${line%% *}") $(b "$line")";; esac
  done
  for k in smtpd_tls_security_level smtpd_sasl_type smtpd_milters; do
    echo "postconf $(b "$k") $(b "$(postconf -h "$k" 2>/dev/null)")"
  done
  for k in virtual_mailbox_domains mydestination myhostname virtual_mailbox_base; do
    v=$(postconf -xh "$k" 2>/dev/null || postconf -h "$k" 2>/dev/null)
    echo "postconf $(b "$k") $(b "$v")"
    for item in $(printf '%s' "$v" | tr ',' ' '); do
      case "$item" in
        *:/*) src="/${item#*:/}"; [ -r "$src" ] && echo "postmap $(b "$k") $(b "$item") $(bf "$src")";;
      esac
    done
  done
fi
root=""
if command -v doveconf >/dev/null 2>&1; then
  loc=$(doveconf -h mail_location 2>/dev/null)
  echo "mail-location $(b "$loc")"
  echo "dovecot-offers $(b "$(doveconf -h protocols 2>/dev/null)") $(b "$(doveconf -h plugin/sieve 2>/dev/null)")"
  p=${loc#*:}; p=${p%%:*}; root=${p%%%*}
fi
[ -n "$root" ] || root=/var/vmail
root=${root%/}
if [ -d "$root" ]; then
  echo "maildir-root $(b "$root")"
  find "$root" -maxdepth 6 -type d -name cur 2>/dev/null | while IFS= read -r cur; do
    m=${cur%/cur}
    case "${m##*/}" in .*) continue;; esac
    kb=$(du -sk -- "$m" 2>/dev/null | cut -f1)
    n=$(find "$m/cur" "$m/new" -type f 2>/dev/null | wc -l)
    echo "mailbox $(b "$m") $(b "$kb") $(b "$n")"
  done
fi
# OpenDKIM's settings (they name the key file; the key itself is not read)
[ -r /etc/opendkim.conf ] && echo "opendkim-conf $(bf /etc/opendkim.conf)"
for f in /etc/letsencrypt/renewal/*.conf; do
  [ -e "$f" ] || continue
  name=${f##*/}; name=${name%.conf}
  cert=/etc/letsencrypt/live/$name/cert.pem
  end=$(openssl x509 -in "$cert" -noout -enddate 2>/dev/null | cut -d= -f2)
  names=$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null \
    | tr ',' '\n' | sed -n 's/^ *DNS://p' | tr '\n' ' ')
  auth=$(sed -n 's/^authenticator *= *//p' "$f"); inst=$(sed -n 's/^installer *= *//p' "$f")
  how=""
  [ -f /etc/cron.d/certbot ] && how="cron (/etc/cron.d/certbot)"
  [ -e /lib/systemd/system/certbot.timer ] && how="${how:+$how, }systemd certbot.timer"
  echo "cert $(b "$name") $(b "$end") $(b "$names") $(b "$auth") $(b "$inst") $(b "$how")"
done
for f in /var/spool/cron/crontabs/* /etc/crontab /etc/cron.d/*; do
  [ -f "$f" ] && echo "cron $(b "$f") $(bf "$f")"
done
command -v crontab >/dev/null 2>&1 && out=$(crontab -l 2>/dev/null) && echo "cron $(b "crontab -l") $(b "$out")"
exit 0
