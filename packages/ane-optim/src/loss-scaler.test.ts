import { describe, expect, it } from 'vitest';
import { OptimizerConfigError, OptimizerStateError } from './errors';
import { DynamicLossScaler } from './loss-scaler';
import { Adam } from './optimizers/adam';
import { SGD } from './optimizers/sgd';

describe('DynamicLossScaler', () => {
  it('has torch GradScaler defaults: scale 65536, growth 2, backoff 0.5, interval 2000', () => {
    const scaler = new DynamicLossScaler();
    expect(scaler.scale).toBe(65536);
    expect(scaler.growthFactor).toBe(2);
    expect(scaler.backoffFactor).toBe(0.5);
    expect(scaler.growthInterval).toBe(2000);
    expect(scaler.scaleLoss(1.5)).toBe(98304);
  });

  it('skips, backs off and grows step by step', () => {
    const scaler = new DynamicLossScaler({ initScale: 1024, growthInterval: 3 });
    const clean = () => ({ w: new Float32Array([2048, -512]) });
    const overflow = () => ({ w: new Float32Array([1, Number.POSITIVE_INFINITY]) });
    const nan = () => ({ w: new Float32Array([Number.NaN, 1]) });
    const trace: Array<[boolean, number, number]> = [];
    for (const grads of [clean(), clean(), overflow(), clean(), clean(), clean(), clean(), nan(), clean()]) {
      const { skip } = scaler.unscale(grads);
      scaler.update(skip);
      trace.push([skip, scaler.scale, scaler.growthTracker]);
    }
    expect(trace).toEqual([
      [false, 1024, 1],
      [false, 1024, 2],
      [true, 512, 0], // inf: skipped, halved, count restarts
      [false, 512, 1],
      [false, 512, 2],
      [false, 1024, 0], // third clean step in a row: doubled
      [false, 1024, 1],
      [true, 512, 0], // NaN: skipped, halved
      [false, 512, 1],
    ]);
  });

  it('unscales finite gradients in place (exactly, for a power-of-two scale) and leaves a skipped step alone', () => {
    const scaler = new DynamicLossScaler({ initScale: 1024 });
    const grads = { a: new Float32Array([2048, -3]), b: [new Float32Array([0.5])] };
    expect(scaler.unscale(grads)).toEqual({ skip: false });
    expect([...grads.a, ...(grads.b[0] as Float32Array)]).toEqual([2, -3 / 1024, 0.5 / 1024]);
    const bad = new Float32Array([4, Number.NEGATIVE_INFINITY]);
    expect(scaler.unscale(bad)).toEqual({ skip: true });
    expect([...bad]).toEqual([4, Number.NEGATIVE_INFINITY]);
  });

  it('treats huge but finite gradients as finite', () => {
    const scaler = new DynamicLossScaler();
    expect(scaler.check(new Float32Array([3e38, -3e38, 1e30]))).toEqual({ skip: false });
  });

  it('never grows past the largest float32 and honours minScale', () => {
    const scaler = new DynamicLossScaler({ initScale: 2 ** 127, growthInterval: 1 });
    scaler.update(false);
    expect(scaler.scale).toBe(2 ** 127);
    const floored = new DynamicLossScaler({ initScale: 4, minScale: 2 });
    floored.update(true);
    floored.update(true);
    expect(floored.scale).toBe(2);
  });

  it('never grows past maxScale (a device whose loss scale is fp16 input caps it at 32768)', () => {
    const scaler = new DynamicLossScaler({ initScale: 16384, growthInterval: 1, maxScale: 32768 });
    scaler.update(false);
    scaler.update(false);
    expect(scaler.scale).toBe(32768);
    scaler.update(true);
    expect(scaler.scale).toBe(16384);
    expect(() => new DynamicLossScaler({ initScale: 1024, maxScale: 512 })).toThrow(
      'maxScale must be a number ≥ initScale (1024)',
    );
    expect(() => new DynamicLossScaler({ maxscale: 1 } as never)).toThrow("did you mean 'maxScale'?");
  });

  it('step() runs the update only on clean steps', () => {
    const scaler = new DynamicLossScaler({ initScale: 8 });
    let applied = 0;
    expect(scaler.step(new Float32Array([8]), () => applied++)).toEqual({ skip: false });
    expect(scaler.step(new Float32Array([Number.NaN]), () => applied++)).toEqual({ skip: true });
    expect(applied).toBe(1);
    expect(scaler.scale).toBe(4);
  });

  it('a scaled run of SGD (not scale-invariant) and Adam equals the unscaled run bit for bit', () => {
    for (const make of [
      () => new SGD({ learningRate: 0.1, momentum: 0.9, weightDecay: 0.01 }),
      () => new Adam({ learningRate: 0.01, weightDecay: 0.01 }),
    ]) {
      const plain = { w: new Float32Array([0.5, -1.25, 2]) };
      const scaled = { w: plain.w.slice() };
      const optimizerPlain = make();
      const optimizerScaled = make();
      const scaler = new DynamicLossScaler({ initScale: 2 ** 20, growthInterval: 2 });
      for (let step = 0; step < 12; step++) {
        const grad = new Float32Array([0.3 - step * 0.05, Math.sin(step), 1e-3 * step]);
        const overflow = step === 5; // one step overflows: skipped, the plain run skips it too
        const scaledGrad = grad.map((g) => (overflow ? Number.POSITIVE_INFINITY : g * scaler.scale));
        const { skip } = scaler.step({ w: scaledGrad }, () =>
          optimizerScaled.update(scaled, { w: scaledGrad }),
        );
        expect(skip).toBe(overflow);
        if (!overflow) optimizerPlain.update(plain, { w: grad });
      }
      expect(scaled.w).toEqual(plain.w);
      // 2^20, grown twice in 5 clean steps, halved once, grown 3 times in the last 6: 2^24.
      expect(scaler.scale).toBe(2 ** 24);
    }
  });

  it('saves and loads its counters; rejects bad states and options with typed errors', () => {
    const scaler = new DynamicLossScaler({ growthInterval: 5 });
    scaler.update(false);
    scaler.update(true);
    scaler.update(false);
    const state = scaler.saveState();
    expect(state).toEqual({ format: 'ane-optim/loss-scaler', version: 1, scale: 32768, growthTracker: 1 });
    const restored = new DynamicLossScaler({ growthInterval: 5 });
    restored.loadState(JSON.parse(JSON.stringify(state)));
    expect([restored.scale, restored.growthTracker]).toEqual([32768, 1]);
    expect(() => restored.loadState({ ...state, version: 2 as 1 })).toThrow(OptimizerStateError);
    expect(() => restored.loadState({ ...state, scale: -1 })).toThrow(
      /scale must be a positive finite number/,
    );
    expect([restored.scale, restored.growthTracker]).toEqual([32768, 1]);
    expect(() => new DynamicLossScaler({ growthFactor: 1 })).toThrow(OptimizerConfigError);
    expect(() => new DynamicLossScaler({ backoffFactor: 1.5 })).toThrow(/backoffFactor must be below 1/);
    expect(() => new DynamicLossScaler({ growthInterval: 0 })).toThrow(/growthInterval/);
  });
});
