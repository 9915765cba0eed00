<?php
// Answers with the query's i, so a mixed-up response is noticed.
header('Content-Type: text/plain');
echo "hello from php ", $_GET['i'] ?? '', "\n";
