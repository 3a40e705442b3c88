# shellcheck shell=sh
# lineages RENEWAL_DIR, on the old host, read-only (steps/certificates.py): one line a certbot
# lineage, "NAME STATE DNS-NAMES...": STATE on (NAME.conf) or off (disabled by runbook), the names
# from its live certificate.

dir="$1"; live="${dir%/renewal}/live"
[ -d "$dir" ] || exit 0
for f in "$dir"/*.conf "$dir"/*.conf.runbook-disabled; do
  [ -e "$f" ] || continue
  base=${f##*/}
  case "$base" in
    *.runbook-disabled) state=off; name=${base%.conf.runbook-disabled} ;;
    *) state=on; name=${base%.conf} ;;
  esac
  names=$(openssl x509 -in "$live/$name/cert.pem" -noout -ext subjectAltName 2>/dev/null \
    | tr ',' '\n' | sed -n 's/^ *DNS://p' | tr '\n' ' ')
  printf '%s %s %s\n' "$name" "$state" "$names"
done
