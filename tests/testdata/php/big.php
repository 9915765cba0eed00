<?php
// Emits ?mb= MiB of output in 64 KiB writes.
header('Content-Type: application/octet-stream');
$chunk = str_repeat('x', 65535) . "\n";
$n = (int)($_GET['mb'] ?? 1) * 16;
for ($i = 0; $i < $n; $i++) { echo $chunk; }
