#!/bin/sh
# Five lines, 200 ms apart: a streamed CGI response.
printf 'Content-Type: text/plain\n\n'
for i in 0 1 2 3 4; do
  echo "chunk $i"
  sleep 0.2
done
