"""The files beside a kind's docker-compose.yml (runbook/services/kinds.py), as text: Apache's site
configuration for PHP-FPM, the PHP image's Apache additions, the Varnish image and its VCL, and a
cron service's crontab and image.
"""

from __future__ import annotations

from runbook.specs import CronSpec, SiteSpec

PHP_CONF = """\
# {site}: written by `inv containerize` (kind php), mounted into /etc/apache2/conf-enabled/.
# Traefik ends TLS and says so in X-Forwarded-Proto: PHP sees HTTPS=on for requests that came in
# over HTTPS, as on the old host (the lab's images do the same).
SetEnvIf X-Forwarded-Proto "^https$" HTTPS=on
# .htaccess files of PHP applications often use mod_rewrite, which the php image does not load.
<IfModule !rewrite_module>
    LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so
</IfModule>
"""

FPM_SITE_CONF = """\
# {site}: written by `inv containerize` (kind php-fpm), mounted into /etc/apache2/sites-enabled/ of
# the app service (httpd:2.4, which includes it: see its command). PHP runs in the fpm service; both
# see the site's files at the same paths as on the old host.
<IfModule !proxy_module>
    LoadModule proxy_module modules/mod_proxy.so
</IfModule>
<IfModule !proxy_fcgi_module>
    LoadModule proxy_fcgi_module modules/mod_proxy_fcgi.so
</IfModule>
<IfModule !rewrite_module>
    LoadModule rewrite_module modules/mod_rewrite.so
</IfModule>
<IfModule !setenvif_module>
    LoadModule setenvif_module modules/mod_setenvif.so
</IfModule>
{listen}<VirtualHost *:{port}>
    ServerName {name}
{aliases}    DocumentRoot "{docroot}"
    <Directory "{docroot}">
        Options FollowSymLinks
        AllowOverride All
        Require all granted
    </Directory>
    DirectoryIndex index.php index.html
    # Traefik ends TLS: PHP sees HTTPS=on for requests that came in over HTTPS.
    SetEnvIf X-Forwarded-Proto "^https$" HTTPS=on
    <FilesMatch \\.php$>
        SetHandler "proxy:fcgi://fpm:9000"
    </FilesMatch>
</VirtualHost>
"""

VARNISH_DOCKERFILE = """\
# {site}: written by `inv containerize` (kind varnish): the club's Varnish image with the site's VCL.
FROM {image}
COPY default.vcl /etc/varnish/default.vcl
"""

VARNISH_VCL = """\
vcl 4.1;

# {site}: written by `inv containerize` (kind varnish). The backend is the project's `backend`
# service, which serves the site's files.
# TODO: carry over the rules of the old host's VCL (its /etc/varnish/*.vcl), if it has any.
backend default {{
    .host = "backend";
    .port = "{port}";
}}

sub vcl_recv {{
    # The runbook's own checks (User-Agent runbook-verify) are never cached: verify-new's requests,
    # before the final sync, would keep that older copy in the cache after it, until the TTL ends.
    # A VCL of your own needs these lines too.
    if (req.http.User-Agent == "runbook-verify") {{
        return (pass);
    }}
}}
"""

CRON_DOCKERFILE = """\
# {site}: written by `inv containerize`: {image} with Debian's cron, for the site's cron jobs.
FROM {image}
USER root
RUN command -v cron >/dev/null || {{ apt-get update && apt-get install -y --no-install-recommends cron \
    && rm -rf /var/lib/apt/lists/*; }}
"""

CRONTAB_HEAD = """\
# {site}: written by `inv containerize` from the inventory's sites[].cron (on_new: project), in
# /etc/cron.d format (schedule, user, command); mounted at /etc/cron.d/{site} of the {service} service.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""


def php_conf(site: SiteSpec) -> str:
    return PHP_CONF.format(site=site.name)


def fpm_site_conf(site: SiteSpec, docroot: str) -> str:
    aliases = "".join(f"    ServerAlias {d}\n" for d in site.domains[1:])
    listen = "" if site.port == 80 else f"Listen {site.port}\n"
    return FPM_SITE_CONF.format(
        site=site.name, name=site.domains[0], aliases=aliases, docroot=docroot, port=site.port, listen=listen
    )


def varnish_dockerfile(site: SiteSpec, image: str) -> str:
    return VARNISH_DOCKERFILE.format(site=site.name, image=image)


def varnish_vcl(site: SiteSpec, port: int) -> str:
    return VARNISH_VCL.format(site=site.name, port=port)


def cron_dockerfile(site: SiteSpec, image: str) -> str:
    return CRON_DOCKERFILE.format(site=site.name, image=image)


def crontab(site: SiteSpec, service: str, jobs: list[CronSpec]) -> str:
    """The jobs in /etc/cron.d format; cron wants the last line ended."""
    lines = [f"{job.schedule} {job.user} {cron_command(job)}" for job in jobs]
    return CRONTAB_HEAD.format(site=site.name, service=service) + "\n".join(lines) + "\n"


def cron_command(job: CronSpec) -> str:
    """The job's command (CronSpec.command: an /etc/cron.d line's user field is not part of it)."""
    return job.command
