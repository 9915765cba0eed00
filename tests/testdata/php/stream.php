<?php
// Flushes ?n= chunks, ?ms= apart.
header('Content-Type: text/plain');
while (ob_get_level()) ob_end_flush();
$n = (int)($_GET['n'] ?? 3);
for ($i = 0; $i < $n; $i++) { echo "chunk $i\n"; flush(); usleep((int)($_GET['ms'] ?? 100) * 1000); }
