/**
 * The ANE backend end to end on Linux: src/device/ane-backend.ts → the N-API glue → the real
 * bridge (native/ane/ane_device.cc) → the fake platform, whose evaluation calls back into the
 * simulator. So the conformance corpus passing here means every byte went through the IOSurfaces
 * where the specs say, and the fake's bookkeeping proves the Objective-C protocol was followed.
 */
import { existsSync, readdirSync } from 'node:fs';
import type { Program } from 'ane-ir/mil';
import {
  DEFAULT_BUILD_INFO_LINE,
  encodeFp16,
  roundToFp16,
  withDefaultBuildInfo,
  writeBlobFile,
} from 'ane-ir/mil';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { conformanceCaseDirs } from '../../src/cli/conformance';
import { loadCase } from '../../src/conformance/case';
import { runConformance } from '../../src/conformance/run';
import { createAneBackend } from '../../src/device/ane-backend';
import { DEFAULT_COMPILE_BUDGET, Device } from '../../src/device/device';
import { CompileBudgetError, CompileError, DeviceError } from '../../src/errors';
import { compileSimProgram, type SimExecutable } from '../../src/sim';
import { type FakeAddon, loadFakeAddon } from './fake-addon';

const loaded = await loadFakeAddon();
const skipReason =
  'reason' in loaded ? ` (skipped: the fake-platform addon could not be built: ${loaded.reason})` : '';
const sanitized = process.env.ANE_FAKE_ADDON_SANITIZED === '1' ? ' [AddressSanitizer]' : '';

const buildInfo = DEFAULT_BUILD_INFO_LINE;

/** y = x + x on [1, C, 1, S] fp16, with `extra` appended to make the text (and hex id) unique. */
function doubling(channels: number, spatial: number, extra = ''): Program {
  const type = `tensor<fp16, [1, ${channels}, 1, ${spatial}]>`;
  return {
    mil: `program(1.3)\n${buildInfo}\n{\n    func main<ios18>(${type} x) {\n        ${type} y = add(x=x,y=x)[name=string("y")];\n    } -> (y);\n}\n${extra}`,
    weights: new Map(),
    inputs: [{ name: 'x', dtype: 'fp16', shape: [1, channels, 1, spatial] }],
    outputs: [{ name: 'y', dtype: 'fp16', shape: [1, channels, 1, spatial] }],
  };
}

function messages(calls: readonly string[]): string[] {
  return calls.filter((c) => c.startsWith('+[') || c.startsWith('-['));
}

describe.skipIf(!('addon' in loaded))(`ANE backend over the fake platform${sanitized}${skipReason}`, () => {
  const { ane, fake } = (loaded as { addon: FakeAddon }).addon;
  /** Programs the simulator can run, by MIL text (the fake only hands back text and weights). */
  const programs = new Map<string, Program>();
  const executables = new Map<string, SimExecutable>();
  let evaluations = 0;

  function register(program: Program): Program {
    programs.set(program.mil, program);
    // The backend adds the default buildInfo line to text without one: that is the text the fake sees.
    programs.set(withDefaultBuildInfo(program.mil), program);
    return program;
  }

  function newDevice(budget = DEFAULT_COMPILE_BUDGET): Device {
    return new Device('ane', 'the fake platform', 'M4', createAneBackend(ane), budget);
  }

  function simEvaluator(
    mil: string,
    weights: Map<string, Uint8Array>,
    inputs: Uint8Array[],
    outputs: Uint8Array[],
  ) {
    evaluations++;
    const program = programs.get(mil);
    if (!program) throw new Error('the fake was asked to evaluate a program the test did not register');
    let executable = executables.get(mil);
    if (!executable) {
      // The weights are the ones the bridge handed the framework, not the test's own copy.
      executable = compileSimProgram({ ...program, weights }, { chip: 'M4' });
      executables.set(mil, executable);
    }
    executable.run(inputs, outputs); // surfaces may be padded: the simulator reads from byte 0
  }

  beforeAll(() => {
    fake.setEvaluator(simEvaluator);
  });

  afterEach(() => {
    expect(fake.violations()).toEqual([]);
  });

  afterAll(() => {
    fake.setEvaluator(null);
    // Every object released exactly once, nothing loaded, no staging directory left.
    expect(fake.liveObjects()).toEqual([]);
    expect(fake.loadedModels()).toBe(0);
    expect(readdirSync(fake.temporaryDirectory)).toEqual([]);
    (loaded as { removeTemporaryDirectory(): void }).removeTemporaryDirectory();
  });

  it('passes the whole conformance corpus, every byte through the IOSurfaces', () => {
    const dirs = conformanceCaseDirs([]);
    for (const dir of dirs) register(loadCase(dir).program);
    const device = newDevice();
    const before = evaluations;
    const results = runConformance(dirs, device);
    expect(
      results.filter((r) => !r.pass).map((r) => `${r.id}: ${r.error ?? JSON.stringify(r.worst)}`),
    ).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(12);
    expect(evaluations - before).toBe(results.length);
    expect(fake.loadedModels()).toBe(results.length); // compiled once each, cached by the device
    device.dispose();
    expect(fake.loadedModels()).toBe(0);
  });

  it('evaluates on a worker thread: runAsync completes while the JS thread is busy', async () => {
    // With the fake's own C++ evaluator nothing needs the JS thread, so if the evaluation finishes
    // while this thread spins, it ran elsewhere.
    fake.setEvaluator(null);
    try {
      const model = ane.compile(
        doubling(64, 32, '// worker\n').mil,
        new Map(),
        doubling(64, 32).inputs,
        doubling(64, 32).outputs,
      );
      const input = new Uint8Array(4096).map((_, i) => i * 7);
      const output = new Uint8Array(4096);
      const evaluated = () => {
        const seen = fake.lastEvaluationInputs();
        return seen.length === 1 && Buffer.from(seen[0]!.subarray(0, input.length)).equals(input);
      };
      expect(evaluated()).toBe(false);
      const pending = model.runAsync([input], [output]);
      const deadline = Date.now() + 10_000;
      let finishedWhileBusy = false;
      while (!finishedWhileBusy && Date.now() < deadline) finishedWhileBusy = evaluated();
      await pending;
      expect(finishedWhileBusy).toBe(true);
      // The deterministic evaluator's output: in[k % len] + 3 + (k mod 256), from the padded surface.
      const surface = fake.lastEvaluationInputs()[0]!;
      expect(output.every((v, k) => v === ((surface[k % surface.length]! + 3 + (k % 256)) & 0xff))).toBe(
        true,
      );
      model.free();
    } finally {
      fake.setEvaluator(simEvaluator);
    }
  });

  it('Kernel.run gives the same bytes as runSync', async () => {
    const dir = conformanceCaseDirs([]).find((d) => d.endsWith('F-swiglu-ffn'))!;
    const testCase = loadCase(dir);
    register(testCase.program);
    using device = newDevice();
    using kernel = device.compile(testCase.program);
    const sync = kernel.runSync(testCase.inputs).map((b) => b.bytes.slice());
    for (const buffer of kernel.outputs) buffer.bytes.fill(0);
    const outputs = await kernel.run(testCase.inputs);
    expect(outputs.map((b) => b.bytes)).toEqual(sync);
  });

  it('stages model.mil and weights/ under NSTemporaryDirectory()/<hex>, then removes them', () => {
    const dir = conformanceCaseDirs([]).find((d) => d.endsWith('F-swiglu-ffn'))!;
    const { program } = loadCase(dir);
    register(program);
    const device = newDevice();
    device.compile(program);
    const record = fake.compiles().at(-1)!;
    expect(record.succeeded).toBe(true);
    expect(record.directory).toBe(`${fake.temporaryDirectory}/${record.hex}`);
    const staged = new Map(record.files.map((f) => [f.path, f.bytes]));
    expect(Buffer.from(staged.get('model.mil')!).toString('utf8')).toBe(program.mil);
    for (const [key, bytes] of program.weights) {
      expect(staged.get(key.replace('@model_path/', '')), key).toEqual(bytes);
    }
    expect(existsSync(record.directory)).toBe(true);
    device.dispose();
    expect(existsSync(record.directory)).toBe(false);
  });

  /** Orion's layout: per-layer folders, a mask folder and a root-level blob (issue 16). */
  function orionStyle(extra = ''): { program: Program; expected: (x: number[]) => number[] } {
    const blob = (values: number[]) => writeBlobFile([{ dtype: 'fp16', data: encodeFp16(values) }]).bytes;
    const w0 = [0.5, -1, 2, 0.25];
    const w1 = [1.5, 0.75, -0.5, 3];
    const mask = Array.from({ length: 32 }, (_, s) => (s < 16 ? 0 : -2));
    const embed = Array.from({ length: 128 }, (_, i) => (i % 5) / 4);
    const blobConst = (name: string, shape: string, path: string) =>
      `        tensor<fp16, ${shape}> ${name} = const()[name=string("${name}"), val=tensor<fp16, ${shape}>(BLOBFILE(path=string("${path}"), offset=uint64(64)))];`;
    const type = 'tensor<fp16, [1, 4, 1, 32]>';
    const mil = [
      'program(1.3)',
      buildInfo,
      '{',
      `    func main<ios18>(${type} x) {`,
      blobConst('w0', '[1, 4, 1, 1]', '@model_path/layer0/wq.bin'),
      blobConst('w1', '[1, 4, 1, 1]', '@model_path/layer1/wq.bin'),
      blobConst('cm', '[1, 1, 1, 32]', '@model_path/masks/causal.bin'),
      blobConst('e', '[1, 4, 1, 32]', '@model_path/embed.bin'),
      `        ${type} h0 = mul(x=x, y=w0)[name=string("l0")];`,
      `        ${type} h1 = mul(x=h0, y=w1)[name=string("l1")];`,
      `        ${type} h2 = add(x=h1, y=cm)[name=string("m")];`,
      `        ${type} y = add(x=h2, y=e)[name=string("a")];`,
      '    } -> (y);',
      '}',
      extra,
    ].join('\n');
    const program: Program = {
      mil,
      weights: new Map([
        ['@model_path/layer0/wq.bin', blob(w0)],
        ['@model_path/layer1/wq.bin', blob(w1)],
        ['@model_path/masks/causal.bin', blob(mask)],
        ['@model_path/embed.bin', blob(embed)],
      ]),
      inputs: [{ name: 'x', dtype: 'fp16', shape: [1, 4, 1, 32] }],
      outputs: [{ name: 'y', dtype: 'fp16', shape: [1, 4, 1, 32] }],
    };
    const expected = (x: number[]) =>
      x.map((v, i) => {
        const c = Math.floor(i / 32);
        const h1 = roundToFp16(roundToFp16(v * w0[c]!) * w1[c]!);
        return roundToFp16(roundToFp16(h1 + mask[i % 32]!) + embed[i]!);
      });
    return { program, expected };
  }

  it('stages Orion-style weight paths (layer folders, masks/, a root blob) where they point, and runs', () => {
    const { program, expected } = orionStyle('// orion\n');
    register(program);
    using device = newDevice();
    using kernel = device.compile(program);
    const record = fake.compiles().at(-1)!;
    expect(record.succeeded).toBe(true);
    const staged = new Map(record.files.map((f) => [f.path, f.bytes]));
    for (const [key, bytes] of program.weights) {
      expect(staged.get(key.replace('@model_path/', '')), key).toEqual(bytes);
    }
    expect([...staged.keys()].filter((p) => p.endsWith('/'))).toEqual(
      expect.arrayContaining(['layer0/', 'layer1/', 'masks/']),
    );
    const x = Array.from({ length: 128 }, (_, i) => ((i % 7) - 3) / 2);
    const [y] = kernel.runSync([Float32Array.from(x)]);
    expect(Array.from(y!.read())).toEqual(expected(x));
  });

  it("refuses a weight path with '..' before the framework stages anything", () => {
    const { program } = orionStyle('// escape\n');
    const bytes = program.weights.get('@model_path/embed.bin')!;
    const escaping: Program = {
      ...program,
      mil: program.mil.replace('@model_path/embed.bin', '@model_path/../embed.bin'),
      weights: new Map([...program.weights].filter(([k]) => k !== '@model_path/embed.bin')),
    };
    escaping.weights.set('@model_path/../embed.bin', bytes);
    using device = newDevice();
    fake.clearCalls();
    expect(() => device.compile(escaping)).toThrow(CompileError);
    expect(() => device.compile(escaping)).toThrow(/@model_path\/\.\.\/embed\.bin/);
    expect(messages(fake.calls())).toEqual([]);
  });

  it('adds the default buildInfo line to a program without one', () => {
    const program = doubling(64, 32, '// bare header\n');
    const bare = register({ ...program, mil: program.mil.replace(`${buildInfo}\n`, '') });
    expect(bare.mil).not.toContain('buildInfo');
    using device = newDevice();
    using kernel = device.compile(bare);
    expect(
      kernel
        .runSync([new Float32Array(64 * 32).fill(2)])[0]!
        .read()
        .every((v) => v === 4),
    ).toBe(true);
  });

  it('follows the reference call sequence with the right argument types', () => {
    const program = register(doubling(64, 32, '// call sequence\n'));
    using device = newDevice();
    fake.clearCalls();
    using kernel = device.compile(program);
    kernel.runSync([new Float32Array(64 * 32).fill(1.5)]);
    expect(messages(fake.calls())).toEqual([
      '+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:](NSData, NSDictionary, nil) -> _ANEInMemoryModelDescriptor',
      '+[_ANEInMemoryModel inMemoryModelWithDescriptor:](_ANEInMemoryModelDescriptor) -> _ANEInMemoryModel',
      '-[_ANEInMemoryModel hexStringIdentifier]() -> NSString',
      '-[_ANEInMemoryModel compileWithQoS:options:error:](21, NSDictionary{}, NSError**) -> YES',
      '-[_ANEInMemoryModel loadWithQoS:options:error:](21, NSDictionary{}, NSError**) -> YES',
      '+[_ANEIOSurfaceObject objectWithIOSurface:](IOSurfaceRef) -> _ANEIOSurfaceObject',
      '+[_ANEIOSurfaceObject objectWithIOSurface:](IOSurfaceRef) -> _ANEIOSurfaceObject',
      '+[_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:](NSArray, NSArray, NSArray, NSArray, nil, nil, NSNumber) -> _ANERequest',
      '-[_ANEInMemoryModel evaluateWithQoS:options:request:error:](21, NSDictionary{}, _ANERequest, NSError**) -> YES',
    ]);
    // No weights: an empty dictionary, never nil (reference §1.3 step 2).
    expect(fake.calls()).toContain('CFDictionaryCreate({})');
    expect(kernel.outputs[0]!.read().every((v) => v === 3)).toBe(true);
  });

  it("sizes surfaces per rule io-min-surface and io-uniform-alloc with §4.1's six properties", () => {
    const single = register(doubling(64, 32, '// surfaces\n'));
    using device = newDevice();
    const first = fake.surfaces().length;
    device.compile(single);
    const [input, output] = fake.surfaces().slice(first);
    // 4,096-byte tensors, allocated at the 49,152-byte minimum.
    for (const surface of [input!, output!]) {
      expect(surface.allocSize).toBe(49152);
      expect(surface.properties).toEqual({
        kIOSurfaceAllocSize: 49152,
        kIOSurfaceBytesPerElement: 1,
        kIOSurfaceBytesPerRow: 49152,
        kIOSurfaceHeight: 1,
        kIOSurfacePixelFormat: 0,
        kIOSurfaceWidth: 49152,
      });
    }
    const twoInputs = loadCase(conformanceCaseDirs([]).find((d) => d.endsWith('J-dyn-matmul-2in'))!).program;
    register(twoInputs);
    const unpadded = new Device('ane', 'fake', 'M4', createAneBackend(ane, { minSurfaceBytes: 0 }), 10);
    const before = fake.surfaces().length;
    unpadded.compile(twoInputs);
    const sizes = fake
      .surfaces()
      .slice(before)
      .map((s) => s.allocSize);
    const inputBytes = twoInputs.inputs.map((s) => s.shape.reduce((a, b) => a * b, 2));
    expect(sizes.slice(0, 2)).toEqual([Math.max(...inputBytes), Math.max(...inputBytes)]);
    unpadded.dispose();
  });

  it("turns the framework's errors into typed errors with its own text", async () => {
    const rejected = doubling(
      64,
      32,
      'FAKE_COMPILE_ERROR:Error Domain=com.apple.appleneuralengine.compiler Code=1 "InvalidMILProgram"\n',
    );
    using device = newDevice();
    expect(() => device.compile(rejected)).toThrow(CompileError);
    expect(() => device.compile(rejected)).toThrow(
      'Error Domain=com.apple.appleneuralengine.compiler Code=1 "InvalidMILProgram"',
    );

    const program = register(doubling(64, 32, '// eval errors\n'));
    using kernel = device.compile(program);
    const status =
      'Error Domain=com.apple.appleneuralengine Code=8 "processRequest:model:qos:qIndex:modelStringID:options:error:: ANEProgramProcessRequestDirect() Failed with status=0x1d : statusType=0x9: Program Inference error"';
    fake.failNextEvaluate(status);
    expect(() => kernel.runSync()).toThrow(DeviceError);
    fake.failNextEvaluate(status);
    await expect(kernel.run()).rejects.toThrow(status);
    await expect(kernel.run()).resolves.toBeDefined(); // still usable
  });

  it('retries a failed load once after 100 ms, and reports a second failure', () => {
    using device = newDevice();
    const sleeps = fake.sleeps().length;
    fake.failNextLoads(1);
    device.compile(register(doubling(64, 32, '// load retry\n')));
    expect(fake.sleeps().slice(sleeps)).toEqual([100]);
    fake.failNextLoads(2);
    expect(() => device.compile(doubling(64, 32, '// load fails\n'))).toThrow(
      /could not load the compiled program.*ANEProgramLoad\(\) Failed/,
    );
  });

  it('refuses programs whose specs do not match func main before calling the framework', () => {
    using device = newDevice();
    const program = doubling(64, 32, '// mismatch\n');
    fake.clearCalls();
    expect(() =>
      device.compile({ ...program, inputs: [{ name: 'x', dtype: 'fp16', shape: [1, 64, 1, 16] }] }),
    ).toThrow(/program inputs do not match func main/);
    expect(messages(fake.calls())).toEqual([]);
  });

  it('counts compiles per process and refuses past the limit with CompileBudgetError', () => {
    using device = newDevice();
    const limit = ane.compileLimit();
    ane.setCompileLimit(ane.compileCount() + 1);
    try {
      device.compile(register(doubling(64, 32, '// budget 1\n')));
      fake.clearCalls();
      const error = (() => {
        try {
          device.compile(doubling(64, 32, '// budget 2\n'));
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(CompileBudgetError);
      expect((error as CompileBudgetError).details.ruleId).toBe('rt-compile-budget');
      expect(fake.calls()).toEqual([]);
    } finally {
      ane.setCompileLimit(limit);
    }
  });

  it("surfaces the framework's own ~119-compile failure when the budget would allow more", () => {
    const limit = ane.compileLimit();
    ane.setCompileLimit(1000);
    fake.setFrameworkCompileLimit(fake.frameworkCompiles() + 1);
    try {
      using device = newDevice(1000);
      device.compile(register(doubling(64, 32, '// last one\n')));
      expect(() => device.compile(doubling(64, 32, '// one too many\n'))).toThrow(/ANECCompile\(\) FAILED/);
    } finally {
      fake.setFrameworkCompileLimit(119);
      ane.setCompileLimit(limit);
    }
  });
});
