#!/bin/sh
# Reports how many body bytes reached stdin.
n=$(head -c "${CONTENT_LENGTH:-0}" | wc -c)
printf 'Content-Type: text/plain\n\nread=%s\n' "$n"
