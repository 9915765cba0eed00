# Echoes exactly CONTENT_LENGTH bytes of stdin, streaming (run via python3: not executable).
import os, sys
length = os.environ.get("CONTENT_LENGTH")
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\n")
out.write(b"X-Content-Length: " + (length or "unset").encode() + b"\n\n")
out.flush()
left = int(length) if length else None
while left is None or left > 0:
    chunk = sys.stdin.buffer.read1(65536 if left is None else min(65536, left))
    if not chunk:
        break
    out.write(chunk)
    out.flush()
    if left is not None:
        left -= len(chunk)
