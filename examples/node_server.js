#!/usr/bin/env node
// A wpool worker in Node.js (core modules only).
//
//     wpool -n auto -b 127.0.0.1:8080 -- node examples/node_server.js
//     curl 127.0.0.1:8080/
//
// Node is single-threaded, so one process uses one CPU: wpool's `-n auto`
// runs one per usable CPU on the same port, which is what the `cluster`
// module does, without the extra master process in JavaScript and with
// rolling reloads for free (`wpool reload`).
//
// The listening sockets come from wpool as systemd socket activation
// passes them (sd_listen_fds(3)): LISTEN_FDS of them from fd 3 on, named
// by LISTEN_FDNAMES.  `server.listen({ fd })` adopts an open listening fd.
//
// GET / answers "pid=PID id=WPOOL_WORKER_ID gen=WPOOL_GENERATION
// listener=NAME"; GET /health answers "ok".
//
// SIGTERM (wpool's stop and rolling reload) or SIGINT: stop accepting,
// close idle keep-alive connections, let the requests in hand finish, exit 0.
// Needs Node 18.2 or later (server.closeIdleConnections).
'use strict';

const http = require('http');

const SD_LISTEN_FDS_START = 3;
const GRACE_MS = 8000; // below wpool's default --stop-timeout of 10 s

function inheritedFds() {
  const count = process.env.LISTEN_FDS;
  const pid = process.env.LISTEN_PID;
  if (count === undefined) return [{ fd: SD_LISTEN_FDS_START, name: 'l0' }];
  if (pid !== undefined && pid !== String(process.pid)) {
    console.error('node_server: LISTEN_PID is not this process');
    process.exit(1);
  }
  const names = (process.env.LISTEN_FDNAMES || '').split(':');
  const fds = [];
  for (let i = 0; i < Number(count); i++) {
    fds.push({ fd: SD_LISTEN_FDS_START + i, name: names[i] || `l${i}` });
  }
  return fds;
}

let stopping = false;

function serve(listener) {
  const server = http.createServer((req, res) => {
    let body;
    if (req.url === '/health') {
      body = 'ok\n';
    } else {
      const env = process.env;
      body = `pid=${process.pid} id=${env.WPOOL_WORKER_ID ?? '-'} ` +
        `gen=${env.WPOOL_GENERATION ?? '-'} listener=${listener.name}\n`;
    }
    const headers = {
      'Content-Type': 'text/plain',
      'Content-Length': Buffer.byteLength(body),
    };
    if (stopping) headers.Connection = 'close';
    res.writeHead(200, headers);
    res.end(body);
  });
  server.keepAliveTimeout = 5000;
  server.listen({ fd: listener.fd });
  return server;
}

const servers = inheritedFds().map(serve);

function stop() {
  if (stopping) return;
  stopping = true;
  let open = servers.length;
  for (const server of servers) {
    // close() stops accepting and calls back once every connection is gone.
    server.close(() => {
      if (--open === 0) process.exit(0);
    });
    server.closeIdleConnections();
  }
  // A client that never finishes must not hold up the stop forever.
  setTimeout(() => process.exit(0), GRACE_MS).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
