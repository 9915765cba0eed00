#!/bin/sh
# Status: from the query string (%20 → space).
printf 'Status: %s\nContent-Type: text/plain\n\nstatus body\n' "$(printf '%s' "$QUERY_STRING" | sed 's/%20/ /g')"
