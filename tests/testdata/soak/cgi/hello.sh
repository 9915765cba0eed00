#!/bin/sh
printf 'Content-Type: text/plain\n\nhello from sh\n'
