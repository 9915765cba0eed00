#!/bin/sh
# Writes zeros until killed (far more than any socket buffer); records
# "pid pid" in $CGI_TEST_DIR/$QUERY_STRING.pids.
[ -d "$CGI_TEST_DIR" ] && echo "$$ $$" > "$CGI_TEST_DIR/$QUERY_STRING.pids"
printf 'Content-Type: application/octet-stream\n\n'
head -c 4294967296 /dev/zero
