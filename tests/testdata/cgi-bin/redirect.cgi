#!/bin/sh
# Local and client redirects, chosen by QUERY_STRING.
case "$QUERY_STRING" in
  local) printf 'Location: /cgi-bin/env.cgi?via=local-redirect\n\n' ;;
  localbody) printf 'Location: /cgi-bin/env.cgi?via=localbody\nContent-Type: text/plain\n\ndiscarded body\n' ;;
  localstatus) printf 'Status: 303 See Other\nLocation: /cgi-bin/env.cgi\n\n' ;;
  abs) printf 'Location: http://example.org/target\n\n' ;;
  absdoc) printf 'Status: 301 Moved\nLocation: http://example.org/moved\nContent-Type: text/plain\n\nmoved body\n' ;;
  relative) printf 'Location: static.txt\n\n' ;;
  loop) printf 'Location: /cgi-bin/redirect.cgi?loop\n\n' ;;
  static) printf 'Location: /cgi_static.txt\n\n' ;;
esac
