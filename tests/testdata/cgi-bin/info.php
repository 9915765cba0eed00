<?php
// Run through php-cgi (needs REDIRECT_STATUS and SCRIPT_FILENAME).
header("Content-Type: text/plain");
header("X-Php: " . PHP_VERSION);
echo "php ok\n";
echo "REDIRECT_STATUS=", $_SERVER["REDIRECT_STATUS"] ?? "", "\n";
echo "SCRIPT_NAME=", $_SERVER["SCRIPT_NAME"] ?? "", "\n";
echo "PATH_INFO=", $_SERVER["PATH_INFO"] ?? "", "\n";
echo "GET=", json_encode($_GET), "\n";
echo "POST=", json_encode($_POST), "\n";
