// The corpus through the public path a user takes: `ane conformance`, and the shipped copy.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CaseFormatError, loadCase } from '../src/conformance/case';
import { runConformance } from '../src/conformance/run';
import { openDevice } from '../src/device/device';

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

function conformance(args: string[], timeout = 60_000) {
  // The timeout turns a hang (a FIFO read, say) into a failed test instead of a stuck run.
  return spawnSync(process.execPath, [ane, 'conformance', ...args], { encoding: 'utf8', timeout });
}

/** A fresh copy of a shipped case in a temporary directory (inside a parent that holds other files). */
function copyCase(name = 'A-conv-linear'): string {
  const parent = mkdtempSync(join(tmpdir(), 'ane-case-'));
  const dir = join(parent, 'case');
  cpSync(join(shipped, name), dir, { recursive: true });
  return dir;
}

function editCaseJson(dir: string, edit: (meta: Record<string, unknown>) => unknown): void {
  const file = join(dir, 'case.json');
  writeFileSync(file, JSON.stringify(edit(JSON.parse(readFileSync(file, 'utf8'))), null, 2));
}

/** The CaseFormatError loadCase throws for `dir` (fails the test when it throws anything else). */
function loadError(dir: string): CaseFormatError {
  try {
    loadCase(dir);
  } catch (error) {
    expect(error).toBeInstanceOf(CaseFormatError);
    return error as CaseFormatError;
  }
  throw new Error(`loadCase(${dir}) accepted the case`);
}

function makeFifo(path: string): void {
  rmSync(path, { force: true });
  const made = spawnSync('mkfifo', [path]);
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
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

  it('exits 2 with the reason when asked for the ANE where there is none, advising the CLI option', () => {
    const result = conformance(['--backend', 'ane']);
    if (process.platform === 'darwin' && process.arch === 'arm64') return;
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('DeviceUnavailableError');
    expect(result.stderr).toContain('--backend sim');
    expect(result.stderr).not.toContain('openDevice');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('rejects a bad chip in one line with a did-you-mean, exit code 2', () => {
    const result = conformance(['--chip', 'm2']);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      "ane: --chip must be one of M1, M2, M3, M4, M5, got 'm2'; did you mean 'M2'?\n",
    );
    expect(conformance(['--chip', 'M9']).stderr).toContain(
      "--chip must be one of M1, M2, M3, M4, M5, got 'M9'\n",
    );
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

describe('hostile or malformed case directories are CaseFormatErrors naming the file', () => {
  // Case A's input x is fp16 [1, 64, 1, 32]: 4096 bytes.
  it('refuses a negative or non-finite tolerance (either would pass any output)', () => {
    for (const tolerance of [
      { atol: -1, rtol: 0.01 },
      { atol: 0.002, rtol: -0.5 },
      '{"atol": 1e999, "rtol": 0.01}',
    ]) {
      const dir = copyCase();
      const file = join(dir, 'case.json');
      const meta = readFileSync(file, 'utf8');
      const replaced = meta.replace(
        /"tolerance": \{[^}]*\}/,
        `"tolerance": ${typeof tolerance === 'string' ? tolerance : JSON.stringify(tolerance)}`,
      );
      expect(replaced).not.toBe(meta);
      writeFileSync(file, replaced);
      const error = loadError(dir);
      expect(error.file).toBe(file);
      expect(error.message).toMatch(/tolerance\.(atol|rtol)' must be a finite number ≥ 0/);
    }
  });

  it('refuses a case with no outputs (it would compare nothing and pass)', () => {
    const dir = copyCase();
    editCaseJson(dir, (meta) => ({ ...meta, outputs: [] }));
    const error = loadError(dir);
    expect(error.file).toBe(join(dir, 'case.json'));
    expect(error.message).toContain("'outputs' is empty");
  });

  it('refuses tensor and weight paths that leave the case directory, even to a file of the right size', () => {
    const dir = copyCase();
    const outside = join(dir, '..', 'outside.bin');
    writeFileSync(outside, new Uint8Array(4096));
    for (const file of ['../outside.bin', outside, 'inputs/../../outside.bin']) {
      editCaseJson(dir, (meta) => ({
        ...meta,
        inputs: [{ ...(meta.inputs as object[])[0], file }],
      }));
      const error = loadError(dir);
      expect(error.file).toBe(join(dir, 'case.json'));
      expect(error.message).toContain(`'${file}'`);
    }
    editCaseJson(dir, (meta) => ({
      ...meta,
      weights: [{ key: '@model_path/weights/w.bin', file: '../../etc/passwd' }],
    }));
    expect(loadError(dir).message).toContain("'../../etc/passwd' leaves the case directory");
  });

  it('refuses a symlink that leads out of the case directory', () => {
    const dir = copyCase();
    const outside = join(dir, '..', 'outside.bin');
    writeFileSync(outside, new Uint8Array(4096));
    rmSync(join(dir, 'inputs', 'x.bin'));
    symlinkSync(outside, join(dir, 'inputs', 'x.bin'));
    const error = loadError(dir);
    expect(error.file).toBe(join(dir, 'inputs', 'x.bin'));
    expect(error.message).toContain('leads out of the case directory');
    // A symlink that stays inside the case is fine.
    rmSync(join(dir, 'inputs', 'x.bin'));
    cpSync(join(shipped, 'A-conv-linear', 'inputs', 'x.bin'), join(dir, 'inputs', 'real.bin'));
    symlinkSync('real.bin', join(dir, 'inputs', 'x.bin'));
    expect(loadCase(dir).inputs[0]!.byteLength).toBe(4096);
  });

  it('refuses a FIFO as a tensor file or as case.json without blocking on it', { timeout: 120_000 }, () => {
    const dir = copyCase();
    makeFifo(join(dir, 'inputs', 'x.bin'));
    // Through the CLI, in a child process with a timeout: a blocking read would be killed, not hang.
    const result = conformance([dir, '--backend', 'sim'], 20_000);
    expect(result.error).toBeUndefined();
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(
      `CaseFormatError: ${join(dir, 'inputs', 'x.bin')}: is a FIFO (named pipe)`,
    );
    expect(loadError(dir).file).toBe(join(dir, 'inputs', 'x.bin'));

    const caseJsonFifo = copyCase();
    makeFifo(join(caseJsonFifo, 'case.json'));
    const second = conformance([caseJsonFifo, '--backend', 'sim'], 20_000);
    expect(second.error).toBeUndefined();
    expect(second.stdout).toContain(`${join(caseJsonFifo, 'case.json')}: is a FIFO (named pipe)`);
  });

  it('refuses /dev/zero behind a symlink, and a character device inside the case, before reading it', {
    timeout: 120_000,
  }, () => {
    // Through the CLI in a child process with a timeout: reading /dev/zero never ends.
    const dir = copyCase();
    const tensor = join(dir, 'inputs', 'x.bin');
    rmSync(tensor);
    symlinkSync('/dev/zero', tensor);
    const viaSymlink = conformance([dir, '--backend', 'sim'], 20_000);
    expect(viaSymlink.error).toBeUndefined();
    expect(viaSymlink.stdout).toContain(
      `CaseFormatError: ${tensor}: leads out of the case directory (to /dev/zero)`,
    );
    // A device node inside the case (needs the right to mknod, as root here; elsewhere this part is skipped).
    rmSync(tensor);
    if (spawnSync('mknod', [tensor, 'c', '1', '5']).status !== 0) return;
    const viaNode = conformance([dir, '--backend', 'sim'], 20_000);
    expect(viaNode.error).toBeUndefined();
    expect(viaNode.stdout).toContain(`CaseFormatError: ${tensor}: is a device file`);
    expect(loadError(dir).file).toBe(tensor);
  });

  it('checks the size before reading: an 8 GiB (sparse) tensor or weight file is refused by its size', () => {
    const dir = copyCase();
    truncateSync(join(dir, 'inputs', 'x.bin'), 8 * 2 ** 30);
    expect(loadError(dir).message).toBe(
      `${join(dir, 'inputs', 'x.bin')}: holds 8589934592 bytes, but fp16 [1, 64, 1, 32] needs 4096`,
    );
    const weights = copyCase();
    truncateSync(join(weights, 'weights', 'w.bin'), 8 * 2 ** 30);
    expect(loadError(weights).message).toContain('w.bin: weights');
    expect(loadError(weights).message).toContain('is 8589934592 bytes, more than');
  });

  it('names case.json when it holds null, an array or a number', () => {
    for (const text of ['null', '[]', '42', '"case"']) {
      const dir = copyCase();
      writeFileSync(join(dir, 'case.json'), text);
      const error = loadError(dir);
      expect(error.file).toBe(join(dir, 'case.json'));
      expect(error.message).toContain('must hold a JSON object');
    }
  });

  it('names program.mil when it is a directory or missing', () => {
    const dir = copyCase();
    rmSync(join(dir, 'program.mil'));
    expect(loadError(dir).message).toBe(`${join(dir, 'program.mil')}: missing (program.mil)`);
    mkdirSync(join(dir, 'program.mil'));
    const error = loadError(dir);
    expect(error.file).toBe(join(dir, 'program.mil'));
    expect(error.message).toContain('is a directory');
  });
});

describe('cases the compiler refuses on some chips', () => {
  it('reports A2 on M1 and M2 as refused (expected), from the sentence in its notes, and exits 0', () => {
    for (const chip of ['M1', 'M2'] as const) {
      using device = openDevice({ backend: 'sim', chip });
      const [result] = runConformance([join(shipped, 'A2-conv-linear-fp32io')], device);
      expect(result!.outcome).toBe('refused-expected');
      expect(result!.pass).toBe(true);
      expect(result!.refusal?.ruleId).toBe('dtype-fp32-io-in-memory');
    }
    using m3 = openDevice({ backend: 'sim', chip: 'M3' });
    expect(runConformance([join(shipped, 'A2-conv-linear-fp32io')], m3)[0]!.outcome).toBe('pass');
    const cli = conformance(['--backend', 'sim', '--chip', 'M2']);
    expect(cli.status).toBe(0);
    expect(cli.stdout).toMatch(
      /^A2\s+refused \(expected\)\s+—\s+refused by rule dtype-fp32-io-in-memory on M2/m,
    );
    expect(cli.stdout).toContain('11/12 cases passed on sim (M2), 1 refused as expected on this chip (A2)');
  });

  it('fails a refusal the case does not declare, or one by another rule than it names', () => {
    const undeclared = copyCase('A2-conv-linear-fp32io');
    editCaseJson(undeclared, (meta) => ({ ...meta, notes: 'fp32 I/O.' }));
    using device = openDevice({ backend: 'sim', chip: 'M2' });
    const [plain] = runConformance([undeclared], device);
    expect(plain!.outcome).toBe('fail');
    expect(plain!.error).toContain('dtype-fp32-io-in-memory');

    const otherRule = copyCase('A2-conv-linear-fp32io');
    editCaseJson(otherRule, (meta) => ({ ...meta, expectRefused: { chips: ['M2'], rule: 'op-sdpa-mil' } }));
    expect(runConformance([otherRule], device)[0]!.outcome).toBe('fail');

    const declared = copyCase('A2-conv-linear-fp32io');
    editCaseJson(declared, (meta) => ({
      ...meta,
      notes: 'fp32 I/O.',
      expectRefused: { chips: ['M1', 'M2'], rule: 'dtype-fp32-io-in-memory' },
    }));
    expect(runConformance([declared], device)[0]!.outcome).toBe('refused-expected');

    editCaseJson(declared, (meta) => ({ ...meta, expectRefused: { chips: ['m2'] } }));
    expect(loadError(declared).message).toContain("'expectRefused' must be");
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
