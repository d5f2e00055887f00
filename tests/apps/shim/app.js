// Node under wpool --shim (tests/bats/91-shim.bats): as wsgi.py, with
// /slow answered from a timer.
const http = require('http');
const slow = 1000 * Number(process.env.SLOW_SEC || 3);
http.createServer((q, r) => {
  const answer = () => r.end(`pid ${process.pid}\n`);
  if (q.url === '/slow') setTimeout(answer, slow); else answer();
}).listen({fd: 3});
process.on('SIGTERM', () => process.exit(0));
