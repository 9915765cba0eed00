# Writes `write` bytes (64 KiB at a time) under `Content-Length: declared`,
# then stays `linger` seconds (tests/cgi_length_test.ts).
use strict;
my %q = map { split /=/, $_, 2 } split /&/, ($ENV{QUERY_STRING} // '');
$| = 1;
binmode STDOUT;
print "Content-Type: application/octet-stream\r\nContent-Length: $q{declared}\r\n\r\n";
my $left = $q{write} // 0;
while ($left > 0) {
  my $n = $left < 65536 ? $left : 65536;
  print 'x' x $n;
  $left -= $n;
}
sleep($q{linger}) if $q{linger};
