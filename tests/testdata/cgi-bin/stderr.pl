# Writes a marker (or 1 MiB with "flood") to stderr, then a normal response.
$| = 1;
if (($ENV{QUERY_STRING} // "") eq "flood") { print STDERR ("x" x 1023) . "\n" for 1 .. 1024; }
print STDERR "STDERR-MARKER-7f3a\n";
print "Content-Type: text/plain\n\nstdout body ok\n";
