#!/bin/sh
# Content-Length cases (tests/cgi_length_test.ts), chosen by QUERY_STRING.
ct='Content-Type: text/plain\n'
case "$QUERY_STRING" in
  exact) printf "${ct}Content-Length: 11\n\nhello world" ;;
  equal) printf "${ct}Content-Length: 5\nContent-Length: 5, 5\n\nhello" ;;
  zero) printf "${ct}Content-Length: 0\n\n" ;;
  longer) printf "${ct}Content-Length: 5\n\nhello world" ;;
  short) printf "${ct}Content-Length: 100\n\nonly 17 bytes out" ;;
  differ) printf "${ct}Content-Length: 5\nContent-Length: 6\n\nhello" ;;
  differ-list) printf "${ct}Content-Length: 5, 6\n\nhello" ;;
  letters) printf "${ct}Content-Length: abc\n\nhello" ;;
  negative) printf "${ct}Content-Length: -1\n\nhello" ;;
  plus) printf "${ct}Content-Length: +5\n\nhello" ;;
  exponent) printf "${ct}Content-Length: 5e0\n\nhello" ;;
  hex) printf "${ct}Content-Length: 0x5\n\nhello" ;;
  inner-space) printf "${ct}Content-Length: 5 5\n\nhello" ;;
  empty-element) printf "${ct}Content-Length: 5,\n\nhello" ;;
  unsafe) printf "${ct}Content-Length: 9007199254740992\n\nhello" ;;
  chunked) printf "${ct}Transfer-Encoding: chunked\nContent-Length: 100\n\nsix b\n" ;;
  none) printf "${ct}\nno length\n" ;;
  nocontent) printf "Status: 204 No Content\nContent-Length: 5\n\nhello" ;;
  notmodified) printf "Status: 304 Not Modified\nContent-Length: 5\n\nhello" ;;
esac
