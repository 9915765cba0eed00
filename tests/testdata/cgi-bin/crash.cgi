#!/bin/sh
# Scripts that fail at various points, chosen by QUERY_STRING.
case "$QUERY_STRING" in
  none) exit 1 ;;
  signal) kill -9 $$ ;;
  partial) printf 'Content-Type: text/plain\n'; exit 1 ;;
  afterheaders) printf 'Content-Type: text/plain\n\npartial body\n'; sleep 0.2; kill -9 $$ ;;
  exit3) printf 'Content-Type: text/plain\n\nfull body\n'; exit 3 ;;
esac
