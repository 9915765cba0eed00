#!/bin/sh
# Two lines, one second apart.
printf 'Content-Type: text/plain\n\nfirst\n'
sleep 1
echo second
