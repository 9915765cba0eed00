# Not executable and no #! line: runs only through an interpreter mapping for .sh.
printf 'Content-Type: text/plain\n\nhello from sh\n'
