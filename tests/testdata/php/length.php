<?php
// Content-Length cases (tests/fastcgi_length_test.ts): ?cl= the header's
// value, ?cl2= a second Content-Length line, ?write= bytes of output.
header('Content-Type: application/octet-stream');
if (isset($_GET['cl'])) header('Content-Length: ' . $_GET['cl']);
if (isset($_GET['cl2'])) header('Content-Length: ' . $_GET['cl2'], false);
$left = (int)($_GET['write'] ?? 0);
while ($left > 0) {
  $n = min($left, 65536);
  echo str_repeat('x', $n);
  $left -= $n;
}
