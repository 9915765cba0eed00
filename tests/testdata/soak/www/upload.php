<?php
// Reports how many body bytes reached it.
header('Content-Type: text/plain');
echo "read=", strlen(file_get_contents('php://input')), "\n";
