import { describe, expect, it } from 'vitest';
import { FlatArena } from './arena';
import { clipGradNorm } from './clip';
import { OptimizerStateError } from './errors';
import { DynamicLossScaler } from './loss-scaler';
import type { OptimizerState } from './optimizer';
import { Adam, AdamW } from './optimizers/adam';
import { Lion } from './optimizers/lion';
import { SGD } from './optimizers/sgd';
import { cosineDecay, linearWarmup } from './schedules';
import { decodeOptimizerState, encodeOptimizerState } from './state-file';

const bits = (x: Float32Array) => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

/** A deterministic gradient for tensor `name` at `step` (no RNG, so runs are reproducible). */
function gradient(length: number, step: number, salt: number): Float32Array {
  const g = new Float32Array(length);
  for (let i = 0; i < length; i++) g[i] = Math.sin(step * 1.7 + i * 0.37 + salt) * (1 + (step % 3));
  return g;
}

const layout = { 'layers.0.wq': [4, 3], 'layers.0.norm': [3], head: [2, 3] } as const;
const names = Object.keys(layout) as Array<keyof typeof layout>;

function makeTree(): Record<string, Float32Array> {
  const arena = new FlatArena(layout);
  arena.params.forEach((_, i) => {
    arena.params[i] = Math.cos(i);
  });
  const tree: Record<string, Float32Array> = {};
  for (const name of names) tree[name] = arena.view(name).slice();
  return tree;
}

describe('saveState / loadState', () => {
  it('round-trips every buffer bit for bit (NaN payloads and -0 too) and every counter', () => {
    const optimizer = new AdamW({ learningRate: 0.01 });
    const params = makeTree();
    for (let step = 0; step < 3; step++) {
      const grads: Record<string, Float32Array> = {};
      names.forEach((name, salt) => {
        grads[name] = gradient(params[name]?.length ?? 0, step, salt);
      });
      optimizer.update(params, grads);
    }
    const m = optimizer.state.get('head')?.m as Float32Array;
    new Uint32Array(m.buffer, m.byteOffset, 2).set([0x7fc0_1234, 0x8000_0000]); // a NaN with a payload, -0
    const saved = optimizer.saveState();
    const viaBytes = decodeOptimizerState(encodeOptimizerState(saved));
    expect(JSON.parse(JSON.stringify(viaBytes.meta))).toEqual(saved.meta);
    expect(bits(viaBytes.data)).toEqual(bits(saved.data));

    // The file keeps a NaN bit for bit, but loadState refuses it (it would turn the weights into NaN).
    expect(() => new AdamW({ learningRate: 0.01 }).loadState(viaBytes)).toThrow(
      /the 'm' buffer of 'head' holds NaN at element 0/,
    );
    m[0] = 0.25;
    const finite = optimizer.saveState();
    const restored = new AdamW({ learningRate: 0.01 });
    restored.loadState(decodeOptimizerState(encodeOptimizerState(finite)));
    expect(restored.step).toBe(3);
    for (const name of names) {
      const a = optimizer.state.get(name);
      const b = restored.state.get(name);
      expect(b?.step).toBe(a?.step);
      expect(bits(b?.m as Float32Array)).toEqual(bits(a?.m as Float32Array));
      expect(bits(b?.v as Float32Array)).toEqual(bits(a?.v as Float32Array));
    }
    expect(bits(restored.saveState().data)).toEqual(bits(finite.data));
    expect(saved.meta.buffers.map((b) => `${b.field}:${b.tensor}`)).toEqual([
      'm:layers.0.wq',
      'm:layers.0.norm',
      'm:head',
      'v:layers.0.wq',
      'v:layers.0.norm',
      'v:head',
    ]);
  });

  it('moves between the tree API and a flat arena in both directions', () => {
    const tree = makeTree();
    const treeOptimizer = new SGD({ learningRate: 0.1, momentum: 0.9 });
    const grads = Object.fromEntries(names.map((n, salt) => [n, gradient(tree[n]?.length ?? 0, 0, salt)]));
    treeOptimizer.update(tree, grads);

    const arena = new FlatArena(layout);
    const arenaOptimizer = new SGD({ learningRate: 0.1, momentum: 0.9 });
    arenaOptimizer.loadState(treeOptimizer.saveState()); // not bound yet: adopted at the first step
    arenaOptimizer.stepArena(arena);
    expect(arenaOptimizer.state.get('head')?.step).toBe(2);

    const back = new SGD({ learningRate: 0.1, momentum: 0.9 });
    back.loadState(arenaOptimizer.saveState());
    expect(back.state.get('layers.0.wq')?.momentum).toEqual(arena.view('layers.0.wq', 'momentum'));
  });

  it('refuses a state that does not fit, naming the tensor and field, and changes nothing', () => {
    const arena = new FlatArena(layout);
    const optimizer = new Adam();
    optimizer.stepArena(arena);
    const saved = optimizer.saveState();
    const before = bits(arena.field('m'));

    const other = new FlatArena({ ...layout, head: [3, 3] });
    const bound = new Adam();
    bound.init(other);
    const error = (() => {
      try {
        bound.loadState(saved);
      } catch (e) {
        return e as OptimizerStateError;
      }
    })();
    expect(error).toBeInstanceOf(OptimizerStateError);
    expect(error?.details).toEqual({ tensor: 'head', field: 'length' });
    expect(error?.message).toMatch(/'head' has 9 elements here but 6 in the saved state/);
    expect(bound.step).toBe(0);

    const damage = (edit: (s: OptimizerState) => void): OptimizerState => {
      const copy: OptimizerState = { meta: structuredClone(saved.meta), data: saved.data.slice() };
      edit(copy);
      return copy;
    };
    const fresh = () => {
      const o = new Adam();
      o.init(new FlatArena(layout));
      return o;
    };
    expect(() => fresh().loadState(damage((s) => (s.meta.version = 2 as 1)))).toThrow(
      /state version 2 is not supported/,
    );
    expect(() => new AdamW().loadState(saved)).toThrow(/saved by "Adam", not AdamW/);
    expect(() => fresh().loadState(damage((s) => (s.data = s.data.subarray(1))))).toThrow(/does not fit/);
    expect(() => fresh().loadState(damage((s) => s.meta.buffers.pop()))).toThrow(/'head' has no 'v' buffer/);
    expect(() =>
      new SGD({ learningRate: 1 }).loadState({ ...saved, meta: { ...saved.meta, optimizer: 'SGD' } }),
    ).toThrow(/has a 'm' buffer, which SGD with these hyper-parameters does not use/);
    expect(() => decodeOptimizerState(new Uint8Array(20))).toThrow(/not an ane-optim state file/);
    expect(() => decodeOptimizerState(encodeOptimizerState(saved).subarray(0, 30))).toThrow(
      OptimizerStateError,
    );
    expect(bits(arena.field('m'))).toEqual(before);
  });

  it('a state saved from a larger arena is refused by a smaller one', () => {
    const big = new FlatArena({ ...layout, extra: 4 });
    const optimizer = new Lion();
    optimizer.stepArena(big);
    const small = new Lion();
    small.init(new FlatArena(layout));
    expect(() => small.loadState(optimizer.saveState())).toThrow(
      /has tensor 'extra', which the bound arena does not have/,
    );
  });
});

describe('a resumed run continues exactly as an uninterrupted one', () => {
  type Run = { params: Float32Array; optimizer: AdamW; scaler: DynamicLossScaler; arena: FlatArena };
  const options = () => ({
    learningRate: linearWarmup(3, cosineDecay(1e-2, 20, 1e-3)),
    weightDecay: 0.1,
    groups: [{ params: /norm$/, weightDecay: 0 }],
  });
  const start = (): Run => {
    const arena = new FlatArena(layout);
    arena.params.forEach((_, i) => {
      arena.params[i] = Math.cos(i);
    });
    return {
      params: arena.params,
      optimizer: new AdamW(options()),
      scaler: new DynamicLossScaler({ initScale: 2 ** 12, growthInterval: 3 }),
      arena,
    };
  };
  const train = (run: Run, from: number, to: number) => {
    for (let step = from; step < to; step++) {
      names.forEach((name, salt) => {
        const g = gradient(run.arena.tensor(name).length, step, salt).map((x) => x * run.scaler.scale);
        if (step === 4 && name === 'head') g[0] = Number.POSITIVE_INFINITY; // one overflowing step
        run.arena.view(name, 'grads').set(g);
      });
      run.scaler.step(run.arena.grads, () => {
        clipGradNorm(run.arena.grads, 1);
        run.optimizer.stepArena(run.arena);
      });
    }
  };

  it('flat arena + schedule + clipping + loss scaling, checkpointed through bytes at step 7', () => {
    const uninterrupted = start();
    train(uninterrupted, 0, 15);

    const first = start();
    train(first, 0, 7);
    const checkpoint = {
      params: first.arena.params.slice(),
      optimizer: encodeOptimizerState(first.optimizer.saveState()),
      scaler: JSON.stringify(first.scaler.saveState()),
    };
    const resumed = start();
    resumed.arena.params.set(checkpoint.params);
    resumed.optimizer.loadState(decodeOptimizerState(checkpoint.optimizer));
    resumed.scaler.loadState(JSON.parse(checkpoint.scaler));
    train(resumed, 7, 15);

    expect(bits(resumed.arena.params)).toEqual(bits(uninterrupted.arena.params));
    expect(bits(resumed.arena.field('m'))).toEqual(bits(uninterrupted.arena.field('m')));
    expect(bits(resumed.arena.field('v'))).toEqual(bits(uninterrupted.arena.field('v')));
    expect(resumed.optimizer.step).toBe(uninterrupted.optimizer.step);
    expect(uninterrupted.optimizer.step).toBe(14); // one step skipped by the scaler
    expect(resumed.scaler.saveState()).toEqual(uninterrupted.scaler.saveState());
  });

  it('tree API with Lion and SGD', () => {
    for (const make of [
      () => new Lion({ learningRate: 1e-3, weightDecay: 0.1 }),
      () => new SGD({ learningRate: 0.05, momentum: 0.9, nesterov: true }),
    ]) {
      const run = (checkpointAt: number | null) => {
        let params = makeTree();
        let optimizer = make();
        for (let step = 0; step < 10; step++) {
          if (step === checkpointAt) {
            const saved = decodeOptimizerState(encodeOptimizerState(optimizer.saveState()));
            params = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.slice()]));
            optimizer = make();
            optimizer.loadState(saved);
          }
          const grads = Object.fromEntries(
            names.map((n, salt) => [n, gradient(params[n]?.length ?? 0, step, salt)]),
          );
          optimizer.update(params, grads);
        }
        return params;
      };
      const straight = run(null);
      const resumed = run(6);
      for (const name of names)
        expect(bits(resumed[name] as Float32Array)).toEqual(bits(straight[name] as Float32Array));
    }
  });
});

/** The OptimizerStateError `run` throws (failing the test when it throws something else or nothing). */
function caught(run: () => unknown): OptimizerStateError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(OptimizerStateError);
    return error as OptimizerStateError;
  }
  throw new Error('expected an OptimizerStateError');
}

describe('a saved state is refused when loading it would corrupt training', () => {
  /** An AdamW state after one update of a tree { a: [3], b: [2] }. */
  function savedAdamW(): OptimizerState {
    const optimizer = new AdamW({ learningRate: 0.1 });
    optimizer.update(
      { a: new Float32Array([1, 2, 3]), b: new Float32Array([4, 5]) },
      { a: new Float32Array([0.1, 0.2, 0.3]), b: new Float32Array([0.4, 0.5]) },
    );
    return optimizer.saveState();
  }
  const entry = (state: OptimizerState, tensor: string, field: string) =>
    state.meta.buffers.find((b) => b.tensor === tensor && b.field === field)!;

  it('a negative or NaN second moment v, or a non-finite m, naming the tensor and buffer', () => {
    for (const [field, value, text] of [
      ['v', -0.5, /'v' buffer of 'b' holds -0.5 at element 1; it must be finite and >= 0/],
      ['v', Number.NaN, /'v' buffer of 'b' holds NaN at element 1/],
      ['m', Number.POSITIVE_INFINITY, /'m' buffer of 'b' holds Infinity at element 1; it must be finite/],
    ] as const) {
      const saved = savedAdamW();
      saved.data[entry(saved, 'b', field).offset + 1] = value;
      const optimizer = new AdamW({ learningRate: 0.1 });
      const error = caught(() => optimizer.loadState(saved));
      expect(error.details).toEqual({ tensor: 'b', field });
      expect(error.message).toMatch(text);
      expect(optimizer.state.size).toBe(0); // nothing loaded
      expect(optimizer.step).toBe(0);
    }
  });

  it('compares full shapes, not element counts: [4, 2] does not load into [2, 4]', () => {
    const from = new Adam();
    from.stepArena(new FlatArena({ w: [4, 2] }));
    const saved = from.saveState();
    expect(saved.meta.tensors[0]!.shape).toEqual([4, 2]);

    const bound = new Adam();
    bound.init(new FlatArena({ w: [2, 4] }));
    const error = caught(() => bound.loadState(saved));
    expect(error.details).toEqual({ tensor: 'w', field: 'shape' });
    expect(error.message).toMatch(/'w' has shape \[2, 4\] here but \[4, 2\] in the saved state/);

    const unbound = new Adam();
    unbound.loadState(decodeOptimizerState(encodeOptimizerState(saved)));
    const later = caught(() => unbound.stepArena(new FlatArena({ w: [2, 4] })));
    expect(later.details).toEqual({ tensor: 'w', field: 'shape' });

    const same = new Adam();
    same.loadState(saved);
    same.stepArena(new FlatArena({ w: [4, 2] })); // the right shape loads
    expect(same.state.get('w')?.step).toBe(2);
  });

  it('step counts at or past 2^53 (no longer exact integers)', () => {
    const saved = savedAdamW();
    const global = { meta: { ...saved.meta, step: 2 ** 53 }, data: saved.data };
    expect(caught(() => new AdamW().loadState(global)).message).toMatch(
      /step must be an integer in \[0, 2\^53\), got 9007199254740992/,
    );
    const perTensor = structuredClone(saved);
    perTensor.meta.tensors[0]!.step = 2 ** 60;
    expect(caught(() => new AdamW().loadState(perTensor)).details).toEqual({ tensor: 'a', field: 'step' });
  });

  it('updating a tree with other names after a load throws, naming the missing and extra tensors', () => {
    const optimizer = new AdamW({ learningRate: 0.1 });
    optimizer.loadState(savedAdamW());
    const params = { a: new Float32Array([1, 2, 3]), c: new Float32Array([4, 5]) };
    const grads = { a: new Float32Array(3), c: new Float32Array(2) };
    const error = caught(() => optimizer.update(params, grads));
    expect(error.message).toMatch(
      /missing 'b' \(in the loaded state, not in these parameters\); extra 'c' \(in these parameters, not in the loaded state\)/,
    );
    expect(error.details).toEqual({ tensor: 'b', field: 'names' });
    expect([...params.a]).toEqual([1, 2, 3]); // nothing changed
    expect(optimizer.state.get('a')?.step).toBe(1);
    // With the names it was saved with, it resumes.
    optimizer.update({ a: params.a, b: new Float32Array([4, 5]) }, { a: grads.a, b: new Float32Array(2) });
    expect(optimizer.state.get('a')?.step).toBe(2);
  });

  it('a bound arena with tensors the loaded state lacks is refused too', () => {
    const arena = new FlatArena({ a: 3, b: 2, extra: 4 });
    const optimizer = new AdamW({ learningRate: 0.1 });
    optimizer.init(arena);
    expect(caught(() => optimizer.loadState(savedAdamW())).message).toMatch(
      /: extra 'extra' \(in these parameters, not in the loaded state\)/,
    );
    const later = new AdamW({ learningRate: 0.1 });
    later.loadState(savedAdamW());
    expect(caught(() => later.stepArena(arena)).details).toEqual({ tensor: 'extra', field: 'names' });
  });
});

describe('state files carry a checksum', () => {
  const bytes = () => {
    const optimizer = new Adam();
    optimizer.stepArena(new FlatArena({ w: [4, 2], b: 3 }));
    return encodeOptimizerState(optimizer.saveState());
  };

  it('ends with the CRC-32 (zlib polynomial) of everything before it', async () => {
    const { crc32, crc32Reference } = await import('./state-file');
    const file = bytes();
    const stored = new DataView(file.buffer).getUint32(file.length - 4, true);
    // The standard check value of CRC-32: "123456789" -> 0xCBF43926, by the twin and by zlib.
    const check = new TextEncoder().encode('123456789');
    expect(crc32Reference(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
    expect(stored).toBe(crc32Reference(file.subarray(0, file.length - 4)));
    // Continuing from a partial CRC gives the CRC of the whole.
    expect(crc32Reference(check.subarray(4), crc32Reference(check.subarray(0, 4)))).toBe(0xcbf43926);
  });

  it('a flipped byte anywhere (data or header JSON) is a checksum error naming the file', () => {
    const file = bytes();
    for (const at of [file.length - 10, 40]) {
      const damaged = file.slice();
      damaged[at]! ^= 0x01;
      const error = caught(() => decodeOptimizerState(damaged, { source: '/ckpt/optimizer.bin' }));
      expect(error.details).toEqual({ field: 'checksum', file: '/ckpt/optimizer.bin' });
      expect(error.message).toMatch(
        /^decodeOptimizerState \(\/ckpt\/optimizer.bin\): checksum mismatch .* the file is corrupt/,
      );
    }
  });

  it('a truncated file, or one with bytes after its end, says so', () => {
    const file = bytes();
    for (const cut of [file.length - 1, 40, 20, 5]) {
      expect(caught(() => decodeOptimizerState(file.subarray(0, cut), { source: 'x.bin' })).message).toMatch(
        /\(x\.bin\): .*truncated/,
      );
    }
    const longer = new Uint8Array(file.length + 4);
    longer.set(file);
    expect(caught(() => decodeOptimizerState(longer)).message).toMatch(/bytes follow its end/);
  });

  it('the unreleased version 1 (no checksum) is refused with a clear message', () => {
    const file = bytes();
    new DataView(file.buffer).setUint32(8, 1, true);
    expect(caught(() => decodeOptimizerState(file)).message).toMatch(
      /file version 1 is an unreleased format without a checksum, which this ane-optim no longer reads \(it reads version 2\); save the state again/,
    );
  });
});
