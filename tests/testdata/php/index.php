<?php
header('Content-Type: text/plain');
echo "root index ", $_SERVER['SCRIPT_NAME'], " ", $_SERVER['REQUEST_URI'], "\n";
