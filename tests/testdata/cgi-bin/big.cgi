#!/bin/sh
# Writes QUERY_STRING MiB of zeros.
printf 'Content-Type: application/octet-stream\n\n'
exec head -c "$((QUERY_STRING * 1048576))" /dev/zero
