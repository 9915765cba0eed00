<?php
// A custom status, custom headers and two cookies.
http_response_code((int)($_GET['code'] ?? 201));
header('X-Custom: yes');
header('X-Multi: one');
header('X-Multi: two', false);
setcookie('a', '1');
setcookie('b', '2');
echo "code\n";
