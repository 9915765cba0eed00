#!/bin/sh
# Dumps the environment, the argument count and the working directory.
printf 'Content-Type: text/plain\n\n'
env | LC_ALL=C sort
echo "ARGC=$#"
echo "CWD=$(pwd)"
