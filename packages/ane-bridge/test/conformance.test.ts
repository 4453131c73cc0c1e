// The corpus through the public path a user takes: `ane conformance`, and the shipped copy.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CaseFormatError, loadCase } from '../src/conformance/case';

const packageRoot = resolve(import.meta.dirname, '..');
const shipped = join(packageRoot, 'conformance');
const shared = resolve(packageRoot, '..', '..', '..', 'shared', 'conformance');
const ane = join(packageRoot, 'bin', 'ane.mjs');

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => statSync(join(dir, f)).isFile())
    .map((f) => relative(dir, join(dir, f)))
    .sort();
}

function conformance(args: string[]) {
  return spawnSync(process.execPath, [ane, 'conformance', ...args], { encoding: 'utf8' });
}

describe('ane conformance', () => {
  it('passes every shipped case in the simulator', () => {
    const result = conformance(['--backend', 'sim', '--json']);
    const report = JSON.parse(result.stdout);
    const failures = report.cases.filter((c: { pass: boolean }) => !c.pass);
    expect(failures).toEqual([]);
    expect(report.passed).toBe(12);
    expect(result.status).toBe(0);
  });

  it('prints a table and exits 1 when a case fails, saying where', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ane-conformance-')), 'A-broken');
    cpSync(join(shipped, 'A-conv-linear'), dir, { recursive: true });
    const expected = readFileSync(join(dir, 'expected', 'out.bin'));
    expected.writeUInt16LE(0x4800, 2 * 37); // element 37 (c=1, s=5) becomes 8.0
    writeFileSync(join(dir, 'expected', 'out.bin'), expected);
    const result = conformance([dir, '--backend', 'sim']);
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/^A\s+FAIL/m);
    expect(result.stdout).toContain('out[0,1,0,5]');
    expect(result.stdout).toContain('0/1 cases passed on sim (M4)');
  });

  it('exits 2 with the reason when asked for the ANE where there is none', () => {
    const result = conformance(['--backend', 'ane']);
    if (process.platform === 'darwin' && process.arch === 'arm64') return;
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('DeviceUnavailableError');
  });

  it('rejects unknown options with usage', () => {
    const result = conformance(['--chip', 'M9']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('--chip must be one of');
  });
});

describe('case loading', () => {
  it('names the file and the problem for a truncated tensor file', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ane-case-')), 'A');
    cpSync(join(shipped, 'A-conv-linear'), dir, { recursive: true });
    writeFileSync(join(dir, 'inputs', 'x.bin'), new Uint8Array(10));
    expect(() => loadCase(dir)).toThrow(CaseFormatError);
    expect(() => loadCase(dir)).toThrow('x.bin: holds 10 bytes, but fp16 [1, 64, 1, 32] needs 4096');
  });
});

describe('the corpus shipped in ane-bridge', () => {
  it.skipIf(!existsSync(shared))(
    `equals the project's corpus at ${shared} (skipped when that folder is absent)`,
    () => {
      const files = filesUnder(shared);
      expect(filesUnder(shipped)).toEqual(files);
      for (const file of files) {
        expect(readFileSync(join(shipped, file)).equals(readFileSync(join(shared, file))), file).toBe(true);
      }
    },
  );
});
