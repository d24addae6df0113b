import { lockBackendContract } from '../locks/contract.js';
import { memoryCapabilities } from '../../src/locks/memory.js';
import { startServer } from '../support/server.js';

lockBackendContract({
  backend: 'memory',
  capabilities: memoryCapabilities,
  shortTtlMs: 300,
  start: () => startServer(),
});
