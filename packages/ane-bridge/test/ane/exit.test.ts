/**
 * Process exit leaves no staging directory: a child process compiles through the fake platform and
 * ends without freeing anything, by returning from its script, by process.exit() and by an uncaught
 * exception. The fake's NSTemporaryDirectory() is a fresh directory that must end up empty.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeAddonPath } from './fake-addon';

let addonPath: string | undefined;
let reason = '';
try {
  addonPath = await fakeAddonPath();
} catch (error) {
  reason = ` (skipped: the fake-platform addon could not be built: ${(error as Error).message.split('\n')[0]})`;
}

const child = (ending: string) => `
const { createRequire } = require('node:module');
const { ane } = require(process.env.ADDON);
const spec = [{ name: 'x', dtype: 'fp16', shape: [1, 64, 1, 32] }];
const models = [];
for (let i = 0; i < 3; i++) models.push(ane.compile('program ' + i, new Map([['@model_path/weights/w.bin', new Uint8Array(200)]]), spec, spec));
const x = new Uint8Array(4096), y = new Uint8Array(4096);
models[0].run([x], [y]);
globalThis.keep = models;
${ending}
`;

describe.skipIf(addonPath === undefined)(`process exit removes staging directories${reason}`, () => {
  for (const [how, ending] of [
    ['the script ends', ''],
    ['process.exit()', 'process.exit(0);'],
    ['an uncaught exception', "throw new Error('boom');"],
    ['a pending async run', 'models[1].runAsync([x], [y]).then(() => process.exit(0));'],
  ] as const) {
    it(`when ${how}`, () => {
      const root = mkdtempSync(join(tmpdir(), 'ane-exit-'));
      try {
        const result = spawnSync(process.execPath, ['-e', child(ending)], {
          encoding: 'utf8',
          env: { ...process.env, ADDON: addonPath, ANE_FAKE_TMPDIR: root },
        });
        expect(result.signal).toBeNull();
        if (how !== 'an uncaught exception') expect(result.stderr).toBe('');
        expect(readdirSync(root)).toEqual([]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});
