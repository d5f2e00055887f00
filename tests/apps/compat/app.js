// Node on the pool's socket; Node has no graceful stop of its own, so the
// app closes its server on TERM (GRACEFUL=0: Node's default, exit at once).
// SLOW=S: busy S seconds before it listens, as a large app loads.
const http = require('http');
const end = Date.now() + 1000 * Number(process.env.SLOW || 0);
while (Date.now() < end) {}
const id = process.env.WPOOL_WORKER_ID;
const s = http.createServer((q, r) => r.end(`ok ${id}\n`)).listen({fd: 3});
if (process.env.GRACEFUL !== '0') process.on('SIGTERM', () => s.close());
