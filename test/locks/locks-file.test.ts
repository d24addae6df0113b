// The lock-backend contract on the file backend, through the server's own wiring
// (--backend file --lock-dir), in a fresh temporary lock dir removed afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileCapabilities } from '../../src/locks/file.js';
import { lockBackendContract } from '../locks/contract.js';
import { startServer } from '../support/server.js';

const lockDir = mkdtempSync(join(tmpdir(), 'latchkey-locks-file-'));
after(() => rmSync(lockDir, { recursive: true, force: true }));

lockBackendContract({
  backend: 'file',
  capabilities: fileCapabilities,
  shortTtlMs: 300,
  start: () => startServer({ backend: 'file', lockDir }),
});
