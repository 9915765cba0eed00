#!/bin/sh
# An nph script that frames its own body with Content-Length (one too few bytes with ?short).
if [ "$QUERY_STRING" = short ]; then n=10; else n=9; fi
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %s\r\n\r\nnph body\n' "$n"
