// Preloaded with `--import` (through NODE_OPTIONS): appends the URL of every ES module the
// process resolves, one per line, to the file MODULE_LOG_FILE names, so a test can tell
// whether a process loaded a package. require() calls are not seen (Node 20's hooks see ES
// module resolution only), which is enough for ES-module packages such as OpenTelemetry's.
import { register } from 'node:module';

if (process.env.MODULE_LOG_FILE) {
  register('./module-log-hooks.mjs', import.meta.url, { data: { file: process.env.MODULE_LOG_FILE } });
}
