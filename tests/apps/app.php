<?php
usleep((int)(1e6 * (float)getenv("SLOW")));
$l = socket_import_stream(fopen("php://fd/3", "r"));
while (($c = socket_accept($l)) !== false) {
  socket_read($c, 4096);
  socket_write($c, "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
  socket_close($c);
}
