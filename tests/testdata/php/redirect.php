<?php
// A CGI local redirect: Location without a Status (status 200 sends none).
header('Location: /method.php?from=redirect', true, 200);
