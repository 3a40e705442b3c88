<?php
// Mitgliederverwaltung of the FC Lab (lab/apps.py): configuration, maintenance mode, database.
//
// config.php holds $CONFIG in the manner of Nextcloud's config/config.php; `occ maintenance:mode`
// flips its 'maintenance' key. Every request and every cron run holds a shared lock on
// data/.lock while it works, and occ takes that lock exclusively after switching maintenance on,
// so once occ returns no request or cron run that began before it is still writing.

const MITGLIEDER_VERSION = '1.2.0';

function mitglieder_root(): string
{
    return dirname(__DIR__);
}

function mitglieder_config(): array
{
    $file = mitglieder_root() . '/config.php';
    // occ (the CLI) rewrites config.php: PHP-FPM's opcache must not serve its old version
    if (function_exists('opcache_invalidate')) {
        opcache_invalidate($file, true);
    }
    $CONFIG = [];
    include $file;
    return $CONFIG;
}

/** A shared lock for the request's whole life (released when the process ends the request). */
function mitglieder_lock(int $operation = LOCK_SH)
{
    $lock = fopen(mitglieder_root() . '/data/.lock', 'r');
    if ($lock === false || !flock($lock, $operation)) {
        throw new RuntimeException('cannot lock data/.lock');
    }
    return $lock;
}

function mitglieder_db(array $config): mysqli
{
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $db = new mysqli($config['db_host'], $config['db_user'], $config['db_password'], $config['db_name']);
    $db->set_charset('utf8mb4');
    return $db;
}

function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES, 'UTF-8');
}

/** For the web: the configuration, or a 503 answer (and the end of the request) in maintenance mode. */
function mitglieder_web_start(): array
{
    $GLOBALS['mitglieder_lock'] = mitglieder_lock();
    $config = mitglieder_config();
    if (!empty($config['maintenance'])) {
        flock($GLOBALS['mitglieder_lock'], LOCK_UN);
        http_response_code(503);
        header('Retry-After: 120');
        header('Content-Type: text/html; charset=utf-8');
        echo "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\"><title>Wartungsmodus</title></head>\n";
        echo "<body><h1>Mitgliederverwaltung im Wartungsmodus</h1>\n";
        echo "<p>Diese Seite wird gerade gewartet und ist bald wieder da.</p></body></html>\n";
        exit;
    }
    return $config;
}
