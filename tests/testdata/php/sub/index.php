<?php
header('Content-Type: text/plain');
echo "sub index ", $_SERVER['SCRIPT_NAME'], "\n";
