#!/bin/sh
# Leaves a background job that keeps stderr open (stdin/stdout closed), then
# exits at once; records "pid background-pid" in $CGI_TEST_DIR/bg.pids.
sleep 20 </dev/null >/dev/null &
[ -d "$CGI_TEST_DIR" ] && echo "$$ $!" > "$CGI_TEST_DIR/bg.pids"
printf 'Content-Type: text/plain\n\nok\n'
