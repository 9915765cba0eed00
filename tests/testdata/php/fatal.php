<?php
// Prints, logs to stderr, then dies with a fatal error.
echo "before-fatal\n";
error_log("fixture: secret-stderr-line");
undefined_function_xyz();
