<?php
// Dumps the worker's process environment and $_SERVER, as JSON.
header('Content-Type: application/json');
echo json_encode(['getenv' => getenv(), 'server' => $_SERVER], JSON_UNESCAPED_SLASHES);
