#!/bin/sh
# Starts a grandchild, records "pid grandchild-pid" in $CGI_TEST_DIR/$tag.pids,
# then sleeps before ("<tag>-<secs>") or after ("<tag>-<secs>-after") its headers.
# Writes $CGI_TEST_DIR/$tag.finished if it was not killed.
tag=${QUERY_STRING%%-*}
rest=${QUERY_STRING#*-}
secs=${rest%%-*}
sleep 60 </dev/null >/dev/null 2>&1 &
[ -d "$CGI_TEST_DIR" ] && echo "$$ $!" > "$CGI_TEST_DIR/$tag.pids"
case "$rest" in
  *-after) printf 'Content-Type: text/plain\n\nfirst line\n'; sleep "$secs"; echo done ;;
  *) sleep "$secs"; printf 'Content-Type: text/plain\n\ndone\n' ;;
esac
[ -d "$CGI_TEST_DIR" ] && touch "$CGI_TEST_DIR/$tag.finished"
exit 0
