#!/bin/sh
# Writes a body, leaves a background job that keeps stdout open, and exits
# at once. QUERY_STRING is "<tag>" (the job stays in the script's process
# group), "<tag>-escape" (the job leaves it: setsid) or "<tag>-nohead" (no
# output at all). Records "pid job-pid" in $CGI_TEST_DIR/<tag>.pids.
tag=${QUERY_STRING%%-*}
case "$QUERY_STRING" in
  *-escape) setsid sleep 30 </dev/null 2>/dev/null & ;;
  *) sleep 30 </dev/null 2>/dev/null & ;;
esac
[ -d "$CGI_TEST_DIR" ] && echo "$$ $!" > "$CGI_TEST_DIR/$tag.pids"
case "$QUERY_STRING" in
  *-nohead) ;;
  *) printf 'Content-Type: text/plain\n\nbody before exit\n' ;;
esac
exit 0
