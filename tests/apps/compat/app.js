// Node on the pool's socket; Node has no graceful stop of its own, so the
// app closes its server on TERM (GRACEFUL=0: Node's default, exit at once).
const http = require('http');
const id = process.env.WPOOL_WORKER_ID;
const s = http.createServer((q, r) => r.end(`ok ${id}\n`)).listen({fd: 3});
if (process.env.GRACEFUL !== '0') process.on('SIGTERM', () => s.close());
