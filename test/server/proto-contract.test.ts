// The wire contract's checks (buf.yaml; `npm run proto:check` runs them on proto/ as it is):
// the committed image of the released contract is the one its commit's proto/ builds, and on
// scratch copies of buf.yaml + proto/, the very checks npm test runs let additions through and
// stop what would break a released client, an unformatted file or a rule broken.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  breaking,
  buildReleasedImage,
  findings,
  formatCheck,
  hasCommit,
  lint,
  RELEASED_COMMIT,
  RELEASED_IMAGE,
  scratchContract,
} from '../support/proto-checks.js';

const LOCKS = 'proto/latchkey/v1/locks.proto';

/** Replaces `from` (which must occur exactly once) in a scratch copy's file. */
function edit(root: string, file: string, from: string, to: string): void {
  const path = join(root, file);
  const text = readFileSync(path, 'utf8');
  assert.equal(text.split(from).length, 2, `${file} should contain ${JSON.stringify(from)} once`);
  writeFileSync(path, text.replace(from, to));
}

function types(result: Awaited<ReturnType<typeof lint>>): string[] {
  return [...new Set(findings(result).map((f) => f.type))].sort();
}

test('the released image is what the released commit builds', async (t) => {
  if (!hasCommit(RELEASED_COMMIT)) {
    const reason = `this clone lacks ${RELEASED_COMMIT} (shallow?)`;
    if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
      throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
    return t.skip(reason);
  }
  const out = join(tmpdir(), `latchkey-released-${process.pid}.binpb`);
  await buildReleasedImage(out);
  assert.ok(
    readFileSync(out).equals(readFileSync(RELEASED_IMAGE)),
    'proto/released/latchkey-v1.binpb differs from the image of RELEASED_COMMIT: run `npm run proto:released`',
  );
});

describe('on a copy of the contract', () => {
  test('as it stands: lint, breaking and format pass', async () => {
    using copy = scratchContract();
    for (const [name, result] of [
      ['lint', await lint({ root: copy.root })],
      ['breaking', await breaking({ root: copy.root })],
      ['format', await formatCheck({ root: copy.root })],
    ] as const)
      assert.equal(result.code, 0, `${name}: ${result.stdout}${result.stderr}`);
  });

  test('a field number changed: breaking fails, naming the field', async () => {
    using copy = scratchContract();
    edit(
      copy.root,
      LOCKS,
      '  string owner = 5;\n  // Exclusive holders',
      '  string owner = 15;\n  // Exclusive holders',
    );
    const result = await breaking({ root: copy.root, json: true });
    assert.equal(result.code, 100, result.stderr);
    assert.deepEqual(types(result), ['FIELD_NO_DELETE']);
    assert.match(findings(result)[0]!.message, /field "5" with name "owner" on message "AcquireRequest" was deleted/);
  });

  test('a field renamed (same number): breaking fails, for the JSON and generated-code names', async () => {
    using copy = scratchContract();
    edit(
      copy.root,
      LOCKS,
      '  uint64 fencing_token = 4;\n  uint64 expires_at_ms = 5;',
      '  uint64 fence = 4;\n  uint64 expires_at_ms = 5;',
    );
    const result = await breaking({ root: copy.root, json: true });
    assert.equal(result.code, 100, result.stderr);
    assert.deepEqual(types(result), ['FIELD_SAME_JSON_NAME', 'FIELD_SAME_NAME']);
  });

  test('an enum value renumbered and a method removed: breaking fails for each', async () => {
    using copy = scratchContract();
    edit(copy.root, LOCKS, '  SHARED = 1;', '  SHARED = 2;');
    edit(copy.root, 'proto/latchkey/v1/cache.proto', '  rpc Touch(TouchRequest) returns (TouchResponse);\n', '');
    const result = await breaking({ root: copy.root, json: true });
    assert.equal(result.code, 100, result.stderr);
    assert.deepEqual(types(result), ['ENUM_VALUE_NO_DELETE', 'RPC_NO_DELETE']);
  });

  test('additions pass: a field, a method, an enum value, a new file with a new service', async () => {
    using copy = scratchContract();
    edit(
      copy.root,
      LOCKS,
      '  LockMode mode = 7;\n}',
      '  LockMode mode = 7;\n  // A label for dashboards.\n  string label = 8;\n}',
    );
    edit(
      copy.root,
      LOCKS,
      '  rpc Watch(WatchRequest) returns (stream LockEvent);\n',
      '  rpc Watch(WatchRequest) returns (stream LockEvent);\n  // Release every lease of an owner.\n  rpc ReleaseAll(ReleaseAllRequest) returns (ReleaseAllResponse);\n',
    );
    edit(
      copy.root,
      LOCKS,
      'message ReleaseResponse {',
      'message ReleaseAllRequest {\n  string owner = 1;\n}\n\nmessage ReleaseAllResponse {\n  uint32 released = 1;\n}\n\nmessage ReleaseResponse {',
    );
    edit(copy.root, 'proto/latchkey/v1/cache.proto', '  TOUCHED = 5;\n', '  TOUCHED = 5;\n  EXPIRED = 6;\n');
    writeFileSync(
      join(copy.root, 'proto/latchkey/v1/elections.proto'),
      [
        'syntax = "proto3";',
        '',
        'package latchkey.v1;',
        '',
        '// Leader election.',
        'service Elections {',
        '  // Become the leader of an election, waiting for it.',
        '  rpc Campaign(CampaignRequest) returns (CampaignResponse);',
        '}',
        '',
        'message CampaignRequest {',
        '  string election = 1;',
        '}',
        '',
        'message CampaignResponse {',
        '  uint64 term = 1;',
        '}',
        '',
      ].join('\n'),
    );
    // Marking a method repeatable is not a break on gRPC (buf.yaml says why).
    edit(
      copy.root,
      LOCKS,
      'rpc Release(ReleaseRequest) returns (ReleaseResponse);',
      'rpc Release(ReleaseRequest) returns (ReleaseResponse) {\n    option idempotency_level = IDEMPOTENT;\n  }',
    );
    for (const [name, result] of [
      ['lint', await lint({ root: copy.root })],
      ['breaking', await breaking({ root: copy.root })],
      ['format', await formatCheck({ root: copy.root })],
    ] as const)
      assert.equal(result.code, 0, `${name}: ${result.stdout}${result.stderr}`);
  });

  test('lint fails on an undocumented method and a camelCase field', async () => {
    using copy = scratchContract();
    edit(
      copy.root,
      LOCKS,
      '  rpc Watch(WatchRequest) returns (stream LockEvent);\n',
      '  rpc Watch(WatchRequest) returns (stream LockEvent);\n  rpc Peek(PeekRequest) returns (PeekResponse);\n',
    );
    edit(
      copy.root,
      LOCKS,
      'message ReleaseResponse {',
      'message PeekRequest {\n  string lockName = 1;\n}\n\nmessage PeekResponse {\n  bool held = 1;\n}\n\nmessage ReleaseResponse {',
    );
    const result = await lint({ root: copy.root, json: true });
    assert.equal(result.code, 100, result.stderr);
    assert.deepEqual(types(result), ['COMMENT_RPC', 'FIELD_LOWER_SNAKE_CASE']);
  });

  test('format fails on a file buf format would change, and shows the diff', async () => {
    using copy = scratchContract();
    edit(copy.root, LOCKS, '  bool released = 1;', '    bool   released=1;');
    const result = await formatCheck({ root: copy.root });
    assert.equal(result.code, 100, result.stderr);
    assert.match(result.stdout, /-\s+bool {3}released=1;\n\+ {2}bool released = 1;/);
  });
});
