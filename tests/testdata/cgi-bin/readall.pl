# Reads stdin to EOF, ignoring CONTENT_LENGTH; reports the byte count.
binmode STDIN;
my $n = 0;
while (my $r = read(STDIN, my $buf, 65536)) { $n += $r; }
print "Content-Type: text/plain\r\n\r\n";
print "read=$n content_length=" . ($ENV{CONTENT_LENGTH} // "unset") . "\n";
