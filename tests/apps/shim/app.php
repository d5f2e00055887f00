<?php
// PHP CLI under wpool --shim (tests/bats/91-shim.bats): the listener at
// fd 3, as a PHP user takes it; one connection at a time, as wsgi.py.
$l = socket_import_stream(fopen("php://fd/3", "r"));
while (($c = socket_accept($l)) !== false) {
  $req = socket_read($c, 4096);
  if (strncmp($req, "GET /slow ", 10) == 0)
    usleep((int)(1e6 * (float)(getenv("SLOW_SEC") ?: 3)));
  $body = "pid " . getmypid() . "\n";
  socket_write($c, "HTTP/1.0 200 OK\r\nContent-Length: " . strlen($body) .
    "\r\nConnection: close\r\n\r\n" . $body);
  socket_close($c);
}
