#!/bin/sh
# Streams a line every 0.2 s until killed, with a background job that
# ignores SIGTERM (and holds no pipe: only SIGKILL to the group ends it).
# Records "pid job-pid" in $CGI_TEST_DIR/$QUERY_STRING.pids.
sh -c 'trap "" TERM; exec sleep 60' </dev/null >/dev/null 2>&1 &
[ -d "$CGI_TEST_DIR" ] && echo "$$ $!" > "$CGI_TEST_DIR/$QUERY_STRING.pids"
printf 'Content-Type: text/plain\n\n'
while :; do
  echo tick
  sleep 0.2
done
