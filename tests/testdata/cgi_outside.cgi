#!/bin/sh
# Outside the CGI directory: must never run as CGI.
printf "Content-Type: text/plain\n\nOUTSIDE-%s\n" EXECUTED
