#!/bin/sh
# Malformed and unusual header blocks, chosen by QUERY_STRING.
case "$QUERY_STRING" in
  nocolon) printf 'Content-Type: text/plain\nthis line has no colon\n\nbody\n' ;;
  space) printf 'Content-Type: text/plain\nBad Name: v\n\nbody\n' ;;
  fold) printf 'Content-Type: text/plain\nX-A: one\n two\n\nbody\n' ;;
  barecr) printf 'Content-Type: text/plain\nX-Test: a\rX-Injected: yes\n\nbody\n' ;;
  nul) printf 'Content-Type: text/plain\nX-Test: a\000b\n\nbody\n' ;;
  long) printf 'Content-Type: text/plain\nX-Long: %070000d\n\nbody\n' 0 ;;
  status-bogus) printf 'Status: abc\nContent-Type: text/plain\n\nbody\n' ;;
  status-short) printf 'Status: 20\nContent-Type: text/plain\n\nbody\n' ;;
  status-999) printf 'Status: 999 Weird\nContent-Type: text/plain\n\nbody\n' ;;
  status-noreason) printf 'Status: 404\nContent-Type: text/plain\n\nbody\n' ;;
  hop) printf 'Content-Type: text/plain\nConnection: close\nTransfer-Encoding: chunked\nKeep-Alive: timeout=5\nUpgrade: h2c\nContent-Length: 100\n\nsix b\n' ;;
  cookies) printf 'Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nbody\n' ;;
  dupct) printf 'Content-Type: text/plain\nContent-Type: text/html\n\nbody\n' ;;
  lowercase) printf 'content-type: text/x-lower\nstatus: 202 Accepted\n\nbody\n' ;;
  crlf) printf 'Content-Type: text/plain\r\nX-Crlf: yes\r\n\r\nbody\n' ;;
  mixed) printf 'Content-Type: text/plain\r\nX-Mixed: yes\n\r\nbody\n' ;;
  leadspace) printf 'Content-Type: text/plain\nX-NoSpace:v\nX-Spaces:    padded   \n\nbody\n' ;;
  noct) printf 'X-Only: 1\n\nbody\n' ;;
  empty) printf '\nbody\n' ;;
  head) printf 'Content-Type: text/plain\n\nbody for HEAD\n' ;;
  nocontent) printf 'Status: 204 No Content\n\nshould not be sent\n' ;;
esac
