// A stand-in for a network manager's REST API: GET /v1/state names the caller as pv-xconnect identified it.
const { chmodSync, rmSync } = require('node:fs');
const { createServer } = require('node:http');

const socket = '/run/network-manager/api.sock';
rmSync(socket, { force: true });
createServer((req, res) => {
  const found = req.method === 'GET' && req.url === '/v1/state';
  res.writeHead(found ? 200 : 404, { 'Content-Type': 'application/json' });
  res.end(
    `${JSON.stringify(found ? { state: 'connected', caller: req.headers['x-pv-client'] ?? null } : { error: 'not found' })}\n`,
  );
}).listen(socket, () => chmodSync(socket, 0o666));
