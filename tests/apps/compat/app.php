<?php
// PHP CLI on php://fd/3; PHP dies on TERM, so the app takes TERM itself
// (without restarting the accept) and ends after the request it serves.
// GRACEFUL=0: PHP's default.
// SLOW=S: S seconds before it serves, as a large app loads.
usleep((int)(1e6 * (float)getenv("SLOW")));
$id = getenv("WPOOL_WORKER_ID");
$stop = false;
if (getenv("GRACEFUL") !== "0") {
  pcntl_async_signals(true);
  pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; }, false);
}
$l = socket_import_stream(fopen("php://fd/3", "r"));
while (!$stop && ($c = @socket_accept($l)) !== false) {
  socket_read($c, 4096);
  $b = "ok $id\n";
  socket_write($c, "HTTP/1.0 200 OK\r\nContent-Length: " . strlen($b) . "\r\n\r\n$b");
  socket_close($c);
}
