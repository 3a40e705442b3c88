<?php
// The Mitgliederverwaltung's background job, run by cron every minute as www-data:
//   * * * * * php /var/www/mitglieder/cron.php
// It records a statistics row (the member count) in cron_runs. In maintenance mode it does
// nothing at all (no row, no log line), as Nextcloud's cron.php skips its jobs.
if (PHP_SAPI !== 'cli') {
    http_response_code(403);
    exit(1);
}
require __DIR__ . '/lib/bootstrap.php';

$lock = mitglieder_lock();
$config = mitglieder_config();
if (!empty($config['maintenance'])) {
    exit(0);
}
$db = mitglieder_db($config);
$members = (int)$db->query('SELECT COUNT(*) FROM mitglieder')->fetch_row()[0];
$stmt = $db->prepare('INSERT INTO cron_runs (members) VALUES (?)');
$stmt->bind_param('i', $members);
$stmt->execute();
