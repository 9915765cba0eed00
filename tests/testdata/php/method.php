<?php
// Tells which method and query reached it, in a header (HEAD has no body).
header('X-Method: ' . $_SERVER['REQUEST_METHOD']);
header('X-Query: ' . $_SERVER['QUERY_STRING']);
header('Content-Type: text/plain');
echo "method page\n";
