// node:http for the daemon, loaded with require rather than an ES import: importing it as an ES module reads every
// export, and its lazy WebSocket, CloseEvent and MessageEvent getters then load undici, about 7 MiB of anonymous
// memory that the daemon never uses (Node 22–26; measured by `npm run bench -- footprint`).
import { createRequire } from 'node:module';

export const { createServer, request } = createRequire(import.meta.url)(
  'node:http',
) as typeof import('node:http');
export type { Server, ServerResponse } from 'node:http';
