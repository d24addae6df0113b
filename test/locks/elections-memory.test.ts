// The election contract on the memory backend, and the file backend's refusal of it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileCapabilities } from '../../src/locks/file.js';
import { memoryCapabilities } from '../../src/locks/memory.js';
import { startServer } from '../support/server.js';
import { electionContract } from './election-contract.js';

electionContract({
  backend: 'memory',
  capabilities: memoryCapabilities,
  shortTtlMs: 300,
  start: () => startServer(),
});

const lockDir = mkdtempSync(join(tmpdir(), 'latchkey-elections-file-'));
after(() => rmSync(lockDir, { recursive: true, force: true }));

electionContract({
  backend: 'file',
  capabilities: fileCapabilities,
  shortTtlMs: 300,
  start: () => startServer({ lockDir }),
});
