<?php
// Echoes what the FastCGI peer passed in, as JSON.
header('Content-Type: application/json');
$input = file_get_contents('php://input');
$keys = ['GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'SERVER_PROTOCOL', 'SERVER_NAME', 'SERVER_PORT',
  'REMOTE_ADDR', 'REMOTE_PORT', 'REQUEST_METHOD', 'REQUEST_URI', 'DOCUMENT_URI', 'DOCUMENT_ROOT',
  'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'PATH_TRANSLATED', 'QUERY_STRING', 'CONTENT_TYPE',
  'CONTENT_LENGTH', 'HTTP_HOST', 'HTTP_X_CUSTOM', 'HTTP_PROXY', 'HTTP_AUTHORIZATION', 'PHP_SELF',
  'REQUEST_SCHEME', 'REDIRECT_STATUS', 'EXTRA_PARAM'];
$server = [];
foreach ($keys as $k) { $server[$k] = $_SERVER[$k] ?? null; }
echo json_encode([
  'sapi' => PHP_SAPI,
  'server' => $server,
  'get' => $_GET,
  'post' => $_POST,
  'files' => array_map(fn($f) => ['name' => $f['name'], 'size' => $f['size'], 'error' => $f['error']], $_FILES),
  'inputLen' => strlen($input),
  'inputMd5' => md5($input),
  'pid' => getmypid(),
], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
