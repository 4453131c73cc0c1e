import type { Program } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import type { NativeAne, NativeAneModel } from '../ane/native-ane';
import {
  CompileBudgetError,
  CompileError,
  DeviceError,
  DeviceUnavailableError,
  KernelInputError,
} from '../errors';
import { aneError, checkAneSignature, createAneBackend } from './ane-backend';
import { Device } from './device';

const coded = (code: string, message: string) => Object.assign(new Error(message), { code });

const program: Program = {
  mil: `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {
        tensor<fp16, [1,4,1,32]> y = add(x=x,y=x)[name=string("y")];
    } -> (y);
}
`,
  weights: new Map(),
  inputs: [{ name: 'x', dtype: 'fp16', shape: [1, 4, 1, 32] }],
  outputs: [{ name: 'y', dtype: 'fp16', shape: [1, 4, 1, 32] }],
};

describe('aneError', () => {
  it('maps each native code to its typed error, keeping the text', () => {
    const text = 'Error Domain=com.apple.appleneuralengine Code=8 "status=0x1d"';
    expect(aneError(coded('ANE_COMPILE', text), 'compile')).toBeInstanceOf(CompileError);
    expect(aneError(coded('ANE_DEVICE', text), 'run')).toBeInstanceOf(DeviceError);
    expect((aneError(coded('ANE_DEVICE', text), 'run') as Error).message).toBe(text);
    const budget = aneError(coded('ANE_BUDGET', 'compile budget exhausted'), 'compile') as CompileBudgetError;
    expect(budget).toBeInstanceOf(CompileBudgetError);
    expect(budget.details.ruleId).toBe('rt-compile-budget');
    const unavailable = aneError(coded('ANE_UNAVAILABLE', 'no class _ANERequest'), 'compile');
    expect(unavailable).toBeInstanceOf(DeviceUnavailableError);
    expect(unavailable.message).toContain("backend: 'sim'");
    expect(aneError(coded('ANE_INPUT', 'bad key'), 'compile')).toBeInstanceOf(CompileError);
    expect(aneError(coded('ANE_INPUT', 'wrong size'), 'run')).toBeInstanceOf(KernelInputError);
    const plain = new TypeError('not ours');
    expect(aneError(plain, 'run')).toBe(plain);
  });
});

describe('checkAneSignature', () => {
  it('accepts matching specs and refuses mismatches, which the hardware would read as zeros', () => {
    expect(() => checkAneSignature(program)).not.toThrow();
    const wrongShape = { ...program, outputs: [{ name: 'y', dtype: 'fp16' as const, shape: [1, 4, 1, 16] }] };
    expect(() => checkAneSignature(wrongShape)).toThrow(/program outputs do not match func main/);
    const wrongType = { ...program, inputs: [{ name: 'x', dtype: 'fp32' as const, shape: [1, 4, 1, 32] }] };
    expect(() => checkAneSignature(wrongType)).toThrow(CompileError);
    // Text our parser cannot read goes to the framework, which has the last word.
    expect(() => checkAneSignature({ ...program, mil: 'not MIL at all' })).not.toThrow();
  });
});

describe('the ANE backend in a Device', () => {
  it('passes the rule-table limits, runs async, and frees every compile when the device is disposed', async () => {
    const calls: string[] = [];
    const model: NativeAneModel = {
      hexIdentifier: 'AB',
      stagingDirectory: '/tmp/AB',
      inputSurfaceBytes: 49152,
      outputSurfaceBytes: 49152,
      isFreed: false,
      run: () => calls.push('run'),
      runAsync: async (_inputs, outputs) => {
        calls.push('runAsync');
        outputs[0]!.fill(1);
      },
      free: () => {
        calls.push('free');
        throw coded('ANE_DEVICE', 'unloadWithQoS failed');
      },
    };
    const ane: NativeAne = {
      compile: (_mil, _weights, _inputs, _outputs, options) => {
        calls.push(`compile minSurfaceBytes=${options?.minSurfaceBytes}`);
        return model;
      },
      compileCount: () => 0,
      compileLimit: () => 119,
      setCompileLimit: (limit) => calls.push(`limit ${limit}`),
      liveModels: () => 0,
    };
    const device = new Device('ane', 'a test double', 'M4', createAneBackend(ane), 10);
    const kernel = device.compile(program);
    const [out] = await kernel.run();
    expect(out!.bytes.every((b) => b === 1)).toBe(true);
    kernel.runSync();
    expect(() => device.dispose()).toThrow(DeviceError);
    expect(calls).toEqual(['limit 119', 'compile minSurfaceBytes=49152', 'runAsync', 'run', 'free']);
  });
});
