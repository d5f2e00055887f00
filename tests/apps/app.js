const http = require('http');
const end = Date.now() + 1000 * Number(process.env.SLOW || 0); while (Date.now() < end) {}
http.createServer((q, r) => r.end('ok\n')).listen({fd: 3});
