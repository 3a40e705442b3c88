#!/bin/sh
# Admin-Tool entries: GET lists the lines of data/entries.txt, POST appends the request body.
# POSIX sh: runs under dash (Apache mod_cgi) and busybox ash (busybox httpd -h /var/www/admin).
# The entry is written before any output, so a client that hangs up early cannot lose it.
DATA=/var/www/admin/data/entries.txt
if [ "$REQUEST_METHOD" = "POST" ]; then
    body=$(head -c "${CONTENT_LENGTH:-0}" | tr -d '\r\n')
    printf '%s\n' "$body" >> "$DATA"
    printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
    printf 'added: %s\n' "$body"
else
    printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
    cat "$DATA"
fi
