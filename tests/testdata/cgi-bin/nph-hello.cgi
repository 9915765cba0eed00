#!/bin/sh
# A non-parsed-header script: writes its own status line.
printf 'HTTP/1.1 299 Custom NPH\r\nContent-Type: text/plain\r\nX-Nph: yes\r\nConnection: close\r\n\r\nnph body\n'
