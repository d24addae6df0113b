// `npm run proto:check` (part of `npm test`): buf lint, buf breaking against the released
// contract, and buf format, on proto/ as it is; fails with buf's findings and what to do.
// `npm run proto:released` rewrites proto/released/latchkey-v1.binpb from RELEASED_COMMIT.
import { relative } from 'node:path';
import {
  breaking,
  buildReleasedImage,
  formatCheck,
  lint,
  RELEASED_COMMIT,
  RELEASED_IMAGE,
  ROOT,
} from './proto-checks.js';

if (process.argv.includes('--released')) {
  await buildReleasedImage(RELEASED_IMAGE);
  console.log(`${relative(ROOT, RELEASED_IMAGE)}: built from ${RELEASED_COMMIT.slice(0, 7)}'s proto/`);
} else {
  const checks = [
    { name: 'buf lint', run: lint, fix: 'follow the rule, or list it in buf.yaml lint.except with the reason' },
    {
      name: `buf breaking against ${relative(ROOT, RELEASED_IMAGE)} (${RELEASED_COMMIT.slice(0, 7)})`,
      run: breaking,
      fix: 'a client built on the released contract would break: add a new field, message or method instead',
    },
    { name: 'buf format', run: formatCheck, fix: 'run `npm run proto:format` (buf format -w) and commit the result' },
  ];
  let failed = 0;
  for (const check of checks) {
    const result = await check.run({});
    if (result.code === 0) {
      console.log(`${check.name}: ok`);
      continue;
    }
    failed++;
    console.error(`${check.name}: failed (${check.fix}):\n${result.stdout}${result.stderr}`);
  }
  if (failed > 0) process.exit(1);
}
