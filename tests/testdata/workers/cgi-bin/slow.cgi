#!/bin/sh
# Answers at once with its pid, then runs 30 s (until killed).
printf 'Content-Type: text/plain\n\n%s\n' "$$"
sleep 30
echo done
