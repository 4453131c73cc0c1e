import { join } from 'node:path';
import type { Program } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { loadCase } from '../conformance/case';
import {
  CompileBudgetError,
  CompileError,
  DeviceError,
  DeviceOptionsError,
  DeviceUnavailableError,
  InvalidProgramError,
  KernelInputError,
} from '../errors';
import * as packageRoot from '../index';
import { openDevice } from './device';

const HEADER =
  'program(1.3)\n[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]\n';

/** s = x + y and p = x * y on [1, 2, 1, 2]: two inputs, two outputs. */
function addMulProgram(extraConst = ''): Program {
  const t = 'tensor<fp16, [1,2,1,2]>';
  const mil = `${HEADER}{
    func main<ios18>(tensor<fp16, [1, 2, 1, 2]> x, tensor<fp16, [1, 2, 1, 2]> y) {${extraConst}
        ${t} s = add(x=x,y=y)[name=string("s")];
        ${t} p = mul(x=x,y=y)[name=string("p")];
    } -> (s, p);
}
`;
  const spec = (name: string) => ({ name, dtype: 'fp16' as const, shape: [1, 2, 1, 2] });
  return { mil, weights: new Map(), inputs: [spec('x'), spec('y')], outputs: [spec('s'), spec('p')] };
}

/** A distinct program per n (an unused named constant), to spend compiles. */
function variant(n: number): Program {
  return addMulProgram(`\n        int32 unused${n} = const()[name=string("unused${n}"), val=int32(${n})];`);
}

const corpusCaseA = join(import.meta.dirname, '..', '..', 'conformance', 'A-conv-linear');

describe('openDevice', () => {
  it("picks the simulator on 'auto' here and says why", () => {
    using device = openDevice();
    expect(device.backend).toBe('sim');
    expect(device.reason).toContain("'auto' chose the simulator");
    expect(device.chip).toBe('M4');
  });

  it("refuses 'ane' where there is none, pointing at 'sim'", () => {
    expect(() => openDevice({ backend: 'ane' })).toThrow(DeviceUnavailableError);
    expect(() => openDevice({ backend: 'ane' })).toThrow("openDevice({ backend: 'sim' })");
  });

  it('rejects bad options with a RangeError', () => {
    expect(() => openDevice({ backend: 'gpu' as never })).toThrow(RangeError);
    expect(() => openDevice({ compileBudget: -1 })).toThrow(RangeError);
  });

  it('refuses a chip outside M1–M5 at open, with a typed error and a did-you-mean for case', () => {
    const attempt = (options: unknown): DeviceOptionsError => {
      try {
        openDevice(options as never).dispose();
      } catch (error) {
        expect(error).toBeInstanceOf(DeviceOptionsError);
        return error as DeviceOptionsError;
      }
      throw new Error(`openDevice(${JSON.stringify(options)}) was accepted`);
    };
    for (const backend of ['sim', 'auto'] as const) {
      const lower = attempt({ backend, chip: 'm4' });
      expect(lower.option).toBe('chip');
      expect(lower.message).toBe(
        "openDevice: chip must be one of 'M1', 'M2', 'M3', 'M4', 'M5' (the Apple-silicon family whose ANE rules apply), got the string 'm4'; did you mean 'M4'?",
      );
      expect(attempt({ backend, chip: 'M9' }).message).toMatch(/got the string 'M9'$/);
    }
    expect(attempt({ chip: 4 }).message).toContain('got 4');
    expect(attempt({ backend: 'SIM' }).message).toContain("did you mean 'sim'?");
  });

  it('refuses unknown option keys with a did-you-mean, and a non-object', () => {
    const error = (() => {
      try {
        openDevice({ backend: 'sim', chips: 'M4' } as never);
      } catch (e) {
        return e as DeviceOptionsError;
      }
    })();
    expect(error).toBeInstanceOf(DeviceOptionsError);
    expect(error?.option).toBe('chips');
    expect(error?.message).toBe(
      "openDevice: unknown option 'chips'; did you mean 'chip'? (the options are backend, chip, compileBudget)",
    );
    expect(() => openDevice({ compilebudget: 3 } as never)).toThrow("did you mean 'compileBudget'?");
    expect(() => openDevice('sim' as never)).toThrow(DeviceOptionsError);
    expect(() => openDevice(null as never)).toThrow(DeviceOptionsError);
    // Keys set to undefined are absent, as in TypeScript's optional properties.
    using device = openDevice({ backend: 'sim', chip: undefined } as never);
    expect(device.chip).toBe('M4');
  });

  it('exports the new error classes from the package root', () => {
    expect(packageRoot.DeviceOptionsError).toBe(DeviceOptionsError);
    expect(packageRoot.InvalidProgramError).toBe(InvalidProgramError);
    expect(packageRoot.CaseFormatError).toBeDefined();
  });
});

describe('Device.compile', () => {
  it('runs a two-input, two-output program with hand-computed results, binding in declaration order', () => {
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(addMulProgram());
    const [sum, product] = kernel.runSync([
      new Float32Array([1, 2, 3, 0.5]),
      new Float32Array([10, -2, 0.25, 0.5]),
    ]);
    expect([...sum!.read()]).toEqual([11, 0, 3.25, 1]);
    expect([...product!.read()]).toEqual([10, -4, 0.75, 0.25]);
    // By name, in any order, gives the same.
    kernel.runSync({ y: new Float32Array([10, -2, 0.25, 0.5]), x: new Float32Array([1, 2, 3, 0.5]) });
    expect([...kernel.output('s').read()]).toEqual([11, 0, 3.25, 1]);
  });

  it('rounds fp16 results once, to nearest even (2048 + 1 is a tie that stays at 2048)', () => {
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(addMulProgram());
    const [sum] = kernel.runSync([
      new Float32Array([2048, 2048, 65504, 1]),
      new Float32Array([1, 3, 65504, 2 ** -24]),
    ]);
    // 2049 ties between 2048 and 2050 -> 2048 (even); 2051 -> 2052; 131008 overflows to +inf.
    expect([...sum!.read()]).toEqual([2048, 2052, Number.POSITIVE_INFINITY, 1]);
  });

  it('caches compiles by content and counts only real compiles against the budget', () => {
    using device = openDevice({ backend: 'sim', compileBudget: 2 });
    const first = device.compile(addMulProgram());
    const second = device.compile(addMulProgram());
    expect(second.hash).toBe(first.hash);
    expect(second.inputs[0]!.bytes).not.toBe(first.inputs[0]!.bytes);
    expect(device.compileBudget).toEqual({ limit: 2, used: 1, remaining: 1 });
    device.compile(variant(1));
    expect(() => device.compile(variant(2))).toThrow(CompileBudgetError);
    expect(() => device.compile(variant(2))).toThrow('compile budget exhausted');
    try {
      device.compile(variant(2));
    } catch (error) {
      expect((error as CompileBudgetError).details.ruleId).toBe('rt-compile-budget');
    }
    // A cached program still compiles after the budget is spent.
    expect(device.compile(addMulProgram()).hash).toBe(first.hash);
  });

  it('gives a different hash when a weight changes', () => {
    const testCase = loadCase(corpusCaseA);
    using device = openDevice({ backend: 'sim' });
    const a = device.compile(testCase.program);
    const changed = new Map(testCase.program.weights);
    const bytes = new Uint8Array(changed.get('@model_path/weights/w.bin')!);
    bytes[200] = (bytes[200]! + 1) & 0xff;
    changed.set('@model_path/weights/w.bin', bytes);
    const b = device.compile({ ...testCase.program, weights: changed });
    expect(b.hash).not.toBe(a.hash);
  });

  it('turns a malformed program into a CompileError with its position', () => {
    using device = openDevice({ backend: 'sim' });
    const program = addMulProgram();
    const broken = { ...program, mil: program.mil.replace('add(x=x,y=y)', 'frobnicate(x=x,y=y)') };
    let error: unknown;
    try {
      device.compile(broken);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompileError);
    expect((error as CompileError).message).toContain('frobnicate');
    expect((error as CompileError).details.line).toBe(5);
  });
});

describe('Device.compile arguments', () => {
  it("accepts ane-ir's lowered kernel (its Program is in .program) like the Program itself", () => {
    using device = openDevice({ backend: 'sim' });
    // The shape lowerGraph returns: name, program, ports, … (only .program matters to a device).
    const lowered = { name: 'add_mul', program: addMulProgram(), inputs: [], outputs: [], flops: 8 };
    using kernel = device.compile(lowered);
    const [sum] = kernel.runSync([new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1, 1, 1])]);
    expect([...sum!.read()]).toEqual([2, 3, 4, 5]);
    expect(kernel.hash).toBe(device.compile(addMulProgram()).hash);
  });

  it('refuses what is not a Program with InvalidProgramError naming the field, not a TypeError inside', () => {
    using device = openDevice({ backend: 'sim' });
    const program = addMulProgram();
    const cases: [unknown, string][] = [
      [undefined, 'got undefined'],
      ['program(1.3)', "got the string 'program(1.3)'"],
      [{ ...program, mil: undefined }, 'program.mil must be the MIL text (a string), got undefined'],
      [{ ...program, weights: {} }, 'program.weights must be a Map'],
      [{ ...program, weights: new Map([['w', [1, 2]]]) }, 'must map strings to Uint8Array blob bytes'],
      [{ ...program, inputs: undefined }, 'program.inputs must be an array of TensorSpec'],
      [
        { ...program, outputs: [{ name: 's', dtype: 'fp16', shape: [1, -2] }] },
        'program.outputs[0] must be a TensorSpec',
      ],
      [{ program: { ...program, inputs: 'x' } }, 'program (from .program).inputs must be an array'],
      [{ name: 'k', program: 5 }, 'its .program must be a Program, got 5'],
    ];
    for (const [argument, message] of cases) {
      let error: unknown;
      try {
        device.compile(argument as never);
      } catch (e) {
        error = e;
      }
      expect(error, message).toBeInstanceOf(InvalidProgramError);
      expect((error as Error).message).toContain(message);
    }
    expect(device.compileBudget.used).toBe(0);
  });
});

describe('Kernel', () => {
  it('returns its own output buffers, overwritten by the next run, or copies that survive it', async () => {
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(addMulProgram());
    const own = kernel.runSync([new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1, 1, 1])]);
    const copied = kernel.runSync(undefined, { copy: true });
    const copiedAsync = await kernel.run(undefined, { copy: true });
    expect(own[0]).toBe(kernel.outputs[0]);
    expect(copied[0]).not.toBe(kernel.outputs[0]);
    kernel.runSync([new Float32Array([10, 20, 30, 40]), new Float32Array([0, 0, 0, 0])]);
    // The kernel's own buffer shows the last run; the copies keep 1+1, 2+1, 3+1, 4+1 and 1·1, ….
    expect([...own[0]!.read()]).toEqual([10, 20, 30, 40]);
    for (const outputs of [copied, copiedAsync]) {
      expect([...outputs[0]!.read()]).toEqual([2, 3, 4, 5]);
      expect([...outputs[1]!.read()]).toEqual([1, 2, 3, 4]);
      expect(outputs[0]!.spec).toEqual(kernel.outputs[0]!.spec);
    }
    expect(() => kernel.runSync(undefined, { copy: 'yes' } as never)).toThrow(KernelInputError);
    expect(() => kernel.runSync(undefined, { clone: true } as never)).toThrow("unknown run option 'clone'");
  });

  it('runs asynchronously to the same result as synchronously', async () => {
    const testCase = loadCase(corpusCaseA);
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(testCase.program);
    const sync = kernel.runSync(testCase.inputs)[0]!.read();
    const outputs = await kernel.run(testCase.inputs);
    expect(outputs[0]!.read()).toEqual(sync);
  });

  it('refuses a second run while one is in flight', async () => {
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(addMulProgram());
    const pending = kernel.run();
    expect(() => kernel.runSync()).toThrow(DeviceError);
    await pending;
  });

  it('rejects inputs that do not fit, naming the tensor', () => {
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(addMulProgram());
    expect(() => kernel.runSync([new Float32Array(4)])).toThrow(KernelInputError);
    expect(() => kernel.runSync([new Uint8Array(7), new Uint8Array(8)])).toThrow(
      "tensor 'x' (fp16 [1, 2, 1, 2]) takes 8 bytes, got 7",
    );
    expect(() => kernel.runSync({ x: new Float32Array(4), z: new Float32Array(4) })).toThrow(
      'missing y; unknown z',
    );
    expect(() => kernel.input('nope')).toThrow("no input named 'nope'");
  });

  it('is released by using and by disposing its device', () => {
    const device = openDevice({ backend: 'sim' });
    {
      using _scoped = device.compile(addMulProgram());
      expect(device.kernelCount).toBe(1);
    }
    expect(device.kernelCount).toBe(0);
    const kernel = device.compile(addMulProgram());
    device.dispose();
    expect(kernel.isDisposed).toBe(true);
    expect(() => kernel.runSync()).toThrow('disposed');
    expect(() => device.compile(addMulProgram())).toThrow(DeviceError);
  });
});
