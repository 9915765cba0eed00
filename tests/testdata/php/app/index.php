<?php
// A front controller: routes on REQUEST_URI.
header('Content-Type: text/plain');
echo "front ", parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH), " script=", $_SERVER['SCRIPT_NAME'], "\n";
