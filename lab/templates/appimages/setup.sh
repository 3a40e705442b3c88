# Run by lab/images.py with /bin/sh -e in the debootstrapped root (chroot), after the files of
# this folder are in place; the image's flavour hashes this script, so a change rebuilds.

# Apache: the modules both flavours load; mpm_* and php8.2 move to the flavour folders.
a2enmod -q rewrite headers remoteip expires proxy proxy_fcgi setenvif
a2disconf -q php8.2-fpm 2>/dev/null || true
rm -f /etc/apache2/mods-enabled/mpm_* /etc/apache2/mods-enabled/php8.2.*
mkdir -p /etc/apache2/lab-flavours/mod_php /etc/apache2/lab-flavours/fcgi
for f in mpm_prefork.load mpm_prefork.conf php8.2.load php8.2.conf; do
  ln -s "../../mods-available/$f" "/etc/apache2/lab-flavours/mod_php/$f"
done
for f in mpm_event.load mpm_event.conf; do
  ln -s "../../mods-available/$f" "/etc/apache2/lab-flavours/fcgi/$f"
done
a2enmod -q lab-flavour
a2enconf -q lab-image
cat >>/etc/apache2/envvars <<'VARS'

## lab images: the MPM and PHP module (/etc/apache2/lab-flavours/NAME), from the image's ENV
export LAB_APACHE_FLAVOUR="${LAB_APACHE_FLAVOUR:-fcgi}"
VARS
# mod_remoteip's client address in the access log, as the official wordpress image does.
find /etc/apache2 -type f -name '*.conf' -exec sed -ri 's/([[:space:]]*LogFormat[[:space:]]+"[^"]*)%h([^"]*")/\1%a\2/g' '{}' +
# Logs to the container's stdout and stderr.
ln -sfT /dev/stdout /var/log/apache2/access.log
ln -sfT /dev/stderr /var/log/apache2/error.log
ln -sfT /dev/stdout /var/log/apache2/other_vhosts_access.log
# Debian's "It works" page: a named volume on /var/www/html would get it (and serve it before
# index.php); the official images' docroot is empty.
rm -f /var/www/html/index.html

# Slim, as Debian's -slim images: no documentation but the copyright files, no manual pages or
# translations (also for packages a derived image installs).
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
find /usr/share/man /usr/share/info ! -type d -delete
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
cat >/etc/dpkg/dpkg.cfg.d/lab-slim <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG

# PHP-FPM's pid file (/run/php is made by systemd-tmpfiles on a real host).
mkdir -p /run/php
# The commands the official images' CMDs name, for a compose file's `command:`.
ln -s apache2-foreground /usr/local/bin/httpd-foreground
ln -s /usr/sbin/php-fpm8.2 /usr/local/sbin/php-fpm

# Checks: each flavour's configuration parses, FPM's too (its logs are /proc/self/fd/2: this
# script runs in a mount namespace of its own, the mount ends with it), Varnish runs and
# translates the VCL.
mount -t proc proc /proc
for flavour in mod_php fcgi; do
  (LAB_APACHE_FLAVOUR=$flavour; . /etc/apache2/envvars; apache2 -t)
done
php-fpm8.2 -t
varnishd -V
varnishd -C -f /etc/varnish/default.vcl >/dev/null 2>/tmp/vcl.c || { tail -n 20 /tmp/vcl.c; exit 1; }
rm -f /tmp/vcl.c
