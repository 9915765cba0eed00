<?php
// Sleeps ?ms= milliseconds, then answers with the worker pid.
usleep((int)($_GET['ms'] ?? 100) * 1000);
header('Content-Type: text/plain');
echo "slept pid=", getmypid(), "\n";
