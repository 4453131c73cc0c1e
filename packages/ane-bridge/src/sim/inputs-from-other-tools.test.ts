/**
 * The simulator on programs and weights as other projects and plain Node code hand them over:
 * Orion-style weight paths, blob records other tools write, weights read with fs.readFileSync
 * (Buffers that are views into Node's pool), programs without a buildInfo line; and the resource
 * limits that turn hostile or oversized input into CompileErrors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Program } from 'ane-ir/mil';
import { DEFAULT_BUILD_INFO_LINE, MilLimitError, roundToFp16, writeBlobFile } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { decodeDeviceBytes } from '../device/buffers';
import { openDevice } from '../device/device';
import { CompileError } from '../errors';
import { compileSimProgram } from './executable';
import { decodeFp16Buffer, encodeFp16Buffer } from './io';
import { fp16Spec, milProgram, runFp16 } from './test-support.test-helper';

function compileError(program: Program, options: Parameters<typeof compileSimProgram>[1] = {}): CompileError {
  try {
    compileSimProgram(program, options);
  } catch (error) {
    expect(error).toBeInstanceOf(CompileError);
    return error as CompileError;
  }
  throw new Error('expected the program to be refused');
}

const fp16Blob = (values: readonly number[]) =>
  writeBlobFile([{ dtype: 'fp16', data: encodeBits(values) }]).bytes;

function encodeBits(values: readonly number[]): Uint16Array {
  const bytes = encodeFp16Buffer(values);
  return new Uint16Array(bytes.buffer, bytes.byteOffset, values.length);
}

const blobConst = (name: string, shape: string, path: string, offset = 64) =>
  `tensor<fp16, ${shape}> ${name} = const()[name=string("${name}"), val=tensor<fp16, ${shape}>(BLOBFILE(path=string("${path}"), offset=uint64(${offset})))];`;

/** `bytes` in a Node Buffer that starts `shift` bytes into a larger ArrayBuffer. */
function bufferAt(bytes: Uint8Array, shift: number): Buffer {
  const outer = Buffer.alloc(bytes.byteLength + shift + 5, 0x7f);
  outer.set(bytes, shift);
  return outer.subarray(shift, shift + bytes.byteLength);
}

describe('weights at any relative path under @model_path/ (Orion style)', () => {
  const x = fp16Spec('x', [1, 4, 1, 32]);
  const w0 = [0.5, -1, 2, 0.25];
  const w1 = [1.5, 0.75, -0.5, 3];
  const mask = Array.from({ length: 32 }, (_, s) => (s % 2 === 0 ? 0 : -1));
  const embed = Array.from({ length: 128 }, (_, i) => (i % 7) / 8);
  const program = milProgram(
    [x],
    [
      blobConst('w0', '[1, 4, 1, 1]', '@model_path/layer0/wq.bin'),
      blobConst('w1', '[1, 4, 1, 1]', '@model_path/layer1/wq.bin'),
      blobConst('cm', '[1, 1, 1, 32]', '@model_path/masks/causal.bin'),
      blobConst('e', '[1, 4, 1, 32]', '@model_path/embed.bin'),
      'tensor<fp16, [1, 4, 1, 32]> h0 = mul(x=x, y=w0)[name=string("l0")];',
      'tensor<fp16, [1, 4, 1, 32]> h1 = mul(x=h0, y=w1)[name=string("l1")];',
      'tensor<fp16, [1, 4, 1, 32]> h2 = add(x=h1, y=cm)[name=string("m")];',
      'tensor<fp16, [1, 4, 1, 32]> y = add(x=h2, y=e)[name=string("a")];',
    ],
    [fp16Spec('y', [1, 4, 1, 32])],
    new Map([
      ['@model_path/layer0/wq.bin', fp16Blob(w0)],
      ['@model_path/layer1/wq.bin', fp16Blob(w1)],
      ['@model_path/masks/causal.bin', fp16Blob(mask)],
      ['@model_path/embed.bin', fp16Blob(embed)],
    ]),
  );

  it('compiles and runs, each blob read from its own path', () => {
    const input = Array.from({ length: 128 }, (_, i) => ((i % 5) - 2) / 4);
    const [y] = runFp16(program, [input]);
    const expected = input.map((v, i) => {
      const c = Math.floor(i / 32);
      const s = i % 32;
      const h1 = roundToFp16(roundToFp16(v * w0[c]!) * w1[c]!);
      return roundToFp16(roundToFp16(h1 + mask[s]!) + embed[i]!);
    });
    expect(Array.from(y!)).toEqual(expected);
  });

  it("refuses a path with '..' (and other unstageable paths) with a CompileError naming rule io-in-memory-api", () => {
    for (const path of [
      '@model_path/../escape.bin',
      '@model_path/layer0/../../w.bin',
      '@model_path//abs.bin',
    ]) {
      const bad = milProgram(
        [x],
        [
          blobConst('e', '[1, 4, 1, 32]', path),
          'tensor<fp16, [1, 4, 1, 32]> y = add(x=x, y=e)[name=string("a")];',
        ],
        [fp16Spec('y', [1, 4, 1, 32])],
        new Map([[path, fp16Blob(embed)]]),
      );
      const error = compileError(bad);
      expect(error.details.ruleId, path).toBe('io-in-memory-api');
      expect(error.message, path).toContain(`BLOBFILE path '${path}'`);
    }
  });
});

describe('weights read from Node Buffers at any byte offset', () => {
  const x = fp16Spec('x', [1, 4, 1, 32]);
  const weights = [0.5, -1.25, 2, 0.125];
  const statements = [
    blobConst('w', '[1, 4, 1, 1]', '@model_path/weights/w.bin'),
    'tensor<fp16, [1, 4, 1, 32]> y = mul(x=x, y=w)[name=string("m")];',
  ];
  const expected = (input: readonly number[]) =>
    input.map((v, i) => roundToFp16(v * weights[Math.floor(i / 32)]!));
  const input = Array.from({ length: 128 }, (_, i) => ((i % 9) - 4) / 2);

  it('decodes a blob that sits at an odd offset inside a larger Buffer', () => {
    for (const shift of [1, 3, 6]) {
      const bytes = bufferAt(fp16Blob(weights), shift);
      const program = milProgram(
        [x],
        statements,
        [fp16Spec('y', [1, 4, 1, 32])],
        new Map([['@model_path/weights/w.bin', bytes]]),
      );
      expect(Array.from(runFp16(program, [input])[0]!), `shift ${shift}`).toEqual(expected(input));
    }
  });

  it('decodes a blob read with fs.readFileSync', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ane-sim-weights-'));
    try {
      writeFileSync(join(dir, 'w.bin'), fp16Blob(weights));
      Buffer.from('shift the pool');
      const bytes = readFileSync(join(dir, 'w.bin'));
      const program = milProgram(
        [x],
        statements,
        [fp16Spec('y', [1, 4, 1, 32])],
        new Map([['@model_path/weights/w.bin', bytes]]),
      );
      expect(Array.from(runFp16(program, [input])[0]!)).toEqual(expected(input));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('decodeDeviceBytes and the simulator I/O read Buffers at odd offsets', () => {
    const values = [1, -2, 0.5, 65504, -0.25];
    const fp16 = bufferAt(encodeFp16Buffer(values), 3);
    expect(Array.from(decodeDeviceBytes(fp16, 'fp16'))).toEqual(values);
    expect(Array.from(decodeFp16Buffer(fp16))).toEqual(values);
    const fp32 = bufferAt(new Uint8Array(Float32Array.from([1.5, -3.25, 1e-3]).buffer), 5);
    expect(Array.from(decodeDeviceBytes(fp32, 'fp32'))).toEqual(
      Array.from(Float32Array.from([1.5, -3.25, 1e-3])),
    );
    // An aligned view that does not start at its buffer's beginning.
    const aligned = bufferAt(encodeFp16Buffer(values), 4);
    expect(Array.from(decodeDeviceBytes(aligned, 'fp16'))).toEqual(values);
  });
});

describe('blob records written by other tools (maderix ane_int8_bench.m)', () => {
  // One file, three int8 tensors: header count 1, dtype code 1 (fp16), payload-offset field 0 and a
  // size field holding the channel count, payloads at record + 64.
  const payloads = [
    Int8Array.from({ length: 4 }, (_, i) => 2 * i - 3),
    Int8Array.from({ length: 4 }, (_, i) => 10 - 5 * i),
    Int8Array.from({ length: 4 }, (_, i) => i),
  ];
  function benchFile(): { bytes: Uint8Array; offsets: number[] } {
    const offsets = [64, 192, 320];
    const bytes = new Uint8Array(320 + 64 + 4);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 1, true);
    view.setUint32(4, 2, true);
    payloads.forEach((payload, i) => {
      const at = offsets[i]!;
      view.setUint32(at, 0xdeadbeef, true);
      view.setUint32(at + 4, 1, true);
      view.setBigUint64(at + 8, 4n * 2n, true);
      view.setBigUint64(at + 16, 0n, true);
      bytes.set(new Uint8Array(payload.buffer), at + 64);
    });
    return { bytes, offsets };
  }
  const x = fp16Spec('x', [1, 4, 1, 32]);
  const dequantized = (name: string, offset: number) =>
    `tensor<fp16, [1, 4, 1, 1]> ${name} = constexpr_affine_dequantize()[axis = int32(1), name = string("${name}"), quantized_data = tensor<int8, [1, 4, 1, 1]>(BLOBFILE(path = string("@model_path/weights/q.bin"), offset = uint64(${offset}))), scale = fp16(0.5), zero_point = int8(0)];`;

  it('compile with a warning naming each field and read the payload at record + 64 as int8', () => {
    const { bytes, offsets } = benchFile();
    const program = milProgram(
      [x],
      [
        dequantized('a', offsets[0]!),
        dequantized('b', offsets[1]!),
        dequantized('c', offsets[2]!),
        'tensor<fp16, [1, 4, 1, 32]> h = mul(x=x, y=a)[name=string("m1")];',
        'tensor<fp16, [1, 4, 1, 32]> k = add(x=h, y=b)[name=string("m2")];',
        'tensor<fp16, [1, 4, 1, 32]> y = add(x=k, y=c)[name=string("m3")];',
      ],
      [fp16Spec('y', [1, 4, 1, 32])],
      new Map([['@model_path/weights/q.bin', bufferAt(bytes, 1)]]),
    );
    const executable = compileSimProgram(program);
    const blobWarnings = executable.warnings.filter((w) => w.ruleId === 'blob-offset');
    expect(
      blobWarnings.map(
        (w) => w.message.match(/(payload offset|dtype code|payload size|tensor count) field/)?.[1],
      ),
    ).toEqual([
      'payload offset',
      'dtype code',
      'payload size',
      'payload offset',
      'dtype code',
      'payload size',
      'payload offset',
      'dtype code',
      'payload size',
      'tensor count',
    ]);
    expect(blobWarnings.every((w) => w.severity === 'warning')).toBe(true);
    expect(blobWarnings[1]!.message).toContain(
      'dtype code field (byte 68) is 1 (fp16), expected 4 (int8, as the program declares)',
    );
    expect(blobWarnings[0]!.message).toContain('what the ANE reads from such a record is unverified');

    // The device's kernel carries the same warnings.
    using device = openDevice({ backend: 'sim' });
    using kernel = device.compile(program);
    expect(kernel.warnings.filter((w) => w.ruleId === 'blob-offset')).toEqual(blobWarnings);

    const input = Array.from({ length: 128 }, (_, i) => ((i % 6) - 3) / 2);
    const out = new Uint8Array(256);
    executable.run([encodeFp16Buffer(input)], [out]);
    const expected = input.map((v, i) => {
      const c = Math.floor(i / 32);
      const a = payloads[0]![c]! * 0.5;
      const b = payloads[1]![c]! * 0.5;
      const cc = payloads[2]![c]! * 0.5;
      return roundToFp16(roundToFp16(roundToFp16(v * a) + b) + cc);
    });
    expect(Array.from(decodeFp16Buffer(out))).toEqual(expected);
  });
});

describe('a program without a buildInfo line', () => {
  it('gets the standard line: it compiles and runs', () => {
    const program = milProgram(
      [fp16Spec('x', [1, 4, 1, 32])],
      ['tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r")];'],
      [fp16Spec('y', [1, 4, 1, 32])],
    );
    const bare = { ...program, mil: program.mil.replace(`${DEFAULT_BUILD_INFO_LINE}\n`, '') };
    expect(bare.mil).not.toContain('buildInfo');
    const input = Array.from({ length: 128 }, (_, i) => i - 64);
    expect(Array.from(runFp16(bare, [input])[0]!)).toEqual(input.map((v) => Math.max(0, v)));
  });
});

describe('resource limits become CompileErrors', () => {
  it('MIL text past the parse limit: names the size and the limit', () => {
    const program = milProgram(
      [fp16Spec('x', [1, 4, 1, 32])],
      ['tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r")];'],
      [fp16Spec('y', [1, 4, 1, 32])],
    );
    const huge = { ...program, mil: `${program.mil}//${' '.repeat(8 * 2 ** 20)}` };
    const error = compileError(huge);
    expect(error.cause).toBeInstanceOf(MilLimitError);
    expect(error.message).toMatch(/MIL text length \(characters\) is \d+, above the limit of 8388608/);
  });

  it('deeply nested tuples: a CompileError, not a stack overflow', () => {
    const program = milProgram(
      [fp16Spec('x', [1, 4, 1, 32])],
      [`tensor<fp16, [1, 8, 1, 32]> y = concat(values=${'('.repeat(200000)}x))[name=string("c")];`],
      [fp16Spec('y', [1, 8, 1, 32])],
    );
    expect(compileError(program).message).toMatch(/tuples cannot be nested/);
  });

  it('a rule-legal input the simulator cannot allocate: names the tensor', () => {
    const shape = [1, 65536, 1, 65536];
    const program = milProgram(
      [fp16Spec('x', shape)],
      [`tensor<fp16, [${shape.join(', ')}]> y = relu(x=x)[name=string("r")];`],
      [fp16Spec('y', shape)],
    );
    const error = compileError(program);
    expect(error.message).toMatch(
      /^simulator cannot allocate tensor 'x' \(tensor<fp16, \[1, 65536, 1, 65536\]>, 16\.0 GiB\)/,
    );
  });

  it('an intermediate past the memory limit: names the tensor and the limit', () => {
    const shape = [1, 64, 1, 1024];
    const program = milProgram(
      [fp16Spec('x', shape)],
      [
        `tensor<fp16, [${shape.join(', ')}]> h = relu(x=x)[name=string("r")];`,
        `tensor<fp16, [${shape.join(', ')}]> y = add(x=h, y=x)[name=string("a")];`,
      ],
      [fp16Spec('y', shape)],
    );
    expect(compileSimProgram(program).outputs).toHaveLength(1);
    // x and h take 256 KiB each (fp16 is held widened to fp32): h does not fit under 512 KiB - 1.
    const error = compileError(program, { memoryLimitBytes: 512 * 1024 - 1 });
    expect(error.message).toMatch(
      /^simulator cannot allocate tensor 'h' \(tensor<fp16, \[1, 64, 1, 1024\]>, 256\.0 KiB\): with the 256\.0 KiB already planned it passes the simulator's memory limit of 512\.0 KiB/,
    );
    expect(error.details.line).toBe(5); // the statement defining h
  });

  it("an op's scratch (attention scores) counts against the memory limit too", () => {
    const qkv = [1, 1, 256, 64];
    const spec = (name: string) => fp16Spec(name, qkv);
    const program = milProgram(
      [spec('k'), spec('q'), spec('v')],
      [
        `tensor<fp16, [${qkv.join(', ')}]> y = scaled_dot_product_attention(key=k, query=q, value=v)[name=string("a")];`,
      ],
      [spec('y')],
    );
    // q, k, v: 64 KiB each as planned (fp16 widened to fp32); the scores [1, 1, 256, 256]: 256 KiB.
    expect(compileSimProgram(program, { memoryLimitBytes: 512 * 1024 }).outputs).toHaveLength(1);
    const error = compileError(program, { memoryLimitBytes: 400 * 1024 });
    expect(error.message).toMatch(
      /^simulator cannot compile scaled_dot_product_attention 'a': its attention scores scratch \(256\.0 KiB\) with the 192\.0 KiB already planned it passes the simulator's memory limit of 400\.0 KiB/,
    );
  });

  it('an int16 input is a CompileError naming the input, not an internal error', () => {
    const inputs = [{ name: 'x', dtype: 'int16', shape: [1, 4, 1, 32] }] as unknown as Program['inputs'];
    const program = milProgram(
      inputs,
      [
        'string d = const()[name=string("d"), val=string("fp16")];',
        'tensor<fp16, [1, 4, 1, 32]> y = cast(x=x, dtype=d)[name=string("y")];',
      ],
      [fp16Spec('y', [1, 4, 1, 32])],
    );
    const error = compileError(program);
    expect(error.message).toMatch(
      /^input 'x' is tensor<int16, \[1, 4, 1, 32\]>: program I\/O \(TensorSpec\) is dense fp16 or fp32/,
    );
  });

  it('int8 and uint8 I/O are refused, not sized as 4-byte elements', () => {
    for (const dtype of ['int8', 'uint8']) {
      const inputs = [{ name: 'x', dtype, shape: [1, 4, 1, 64] }] as unknown as Program['inputs'];
      const program = milProgram(
        inputs,
        [
          'string d = const()[name=string("d"), val=string("fp16")];',
          'tensor<fp16, [1, 4, 1, 64]> y = cast(x=x, dtype=d)[name=string("y")];',
        ],
        [fp16Spec('y', [1, 4, 1, 64])],
      );
      expect(compileError(program).message, dtype).toMatch(
        new RegExp(`^input 'x' is tensor<${dtype}, \\[1, 4, 1, 64\\]>`),
      );
    }
  });
});
