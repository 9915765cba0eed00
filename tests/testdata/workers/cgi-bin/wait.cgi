#!/bin/sh
# Sleeps QUERY_STRING seconds (default 1), then answers.
sleep "${QUERY_STRING:-1}"
printf 'Content-Type: text/plain\n\ndone\n'
