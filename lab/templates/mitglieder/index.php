<?php
// Mitgliederverwaltung: GET lists the members, POST (field "name") adds one and answers 303 to /.
require __DIR__ . '/lib/bootstrap.php';

$config = mitglieder_web_start();
try {
    $db = mitglieder_db($config);
    if ($_SERVER['REQUEST_METHOD'] === 'POST') {
        $name = trim((string)($_POST['name'] ?? ''));
        if (!preg_match('/^.{1,100}$/u', $name)) {
            http_response_code(400);
            header('Content-Type: text/plain; charset=utf-8');
            echo "name: 1 to 100 characters\n";
            exit;
        }
        $stmt = $db->prepare('INSERT INTO mitglieder (name) VALUES (?)');
        $stmt->bind_param('s', $name);
        $stmt->execute();
        http_response_code(303);
        header('Location: /?neu=' . $db->insert_id);
        exit;
    }
    $rows = $db->query('SELECT id, name, eingetreten FROM mitglieder ORDER BY id')->fetch_all(MYSQLI_ASSOC);
    $last = $db->query('SELECT MAX(ran_at) FROM cron_runs')->fetch_row()[0];
} catch (mysqli_sql_exception $e) {
    http_response_code(500);
    header('Content-Type: text/plain; charset=utf-8');
    echo "Datenbankfehler: " . $e->getMessage() . "\n";
    exit;
}
header('Content-Type: text/html; charset=utf-8');
?>
<!DOCTYPE html>
<html lang="de">
<head><meta charset="utf-8"><title>Mitgliederverwaltung FC Lab</title></head>
<body>
<h1>Mitgliederverwaltung</h1>
<table>
<thead><tr><th>Nr.</th><th>Name</th><th>Eingetreten</th></tr></thead>
<tbody>
<?php foreach ($rows as $row): ?>
<tr><td><?= (int)$row['id'] ?></td><td class="name"><?= h($row['name']) ?></td><td><?= h((string)$row['eingetreten']) ?></td></tr>
<?php endforeach; ?>
</tbody>
</table>
<p><?= count($rows) ?> Mitglieder</p>
<form method="post" action="/">
<label>Name <input name="name" maxlength="100" required></label>
<button type="submit">Aufnehmen</button>
</form>
<footer>Mitgliederverwaltung <?= MITGLIEDER_VERSION ?>, PHP <?= PHP_VERSION ?> (<?= PHP_SAPI ?>), letzter Cron-Lauf: <?= h((string)($last ?? 'noch keiner')) ?></footer>
</body>
</html>
