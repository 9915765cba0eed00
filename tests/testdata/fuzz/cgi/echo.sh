#!/bin/sh
# Answers with the length of what the server passed: never echoes input.
printf 'Content-Type: text/plain\n\n'
printf 'path_info=%s query=%s\n' "${#PATH_INFO}" "${#QUERY_STRING}"
