// Child process of kernel-buffers.test.ts (issue 10, defect 2): runs the native async kernels while
// their arrays are detached (transferred) and collected, or backed by resizable/growable buffers,
// and prints one line per scenario. A use-after-free shows as a signal exit or a sanitizer report
// (the parent runs this under the ASan addon too), not as a dead test runner.
// Usage: node --expose-gc kernel-buffers.child.cjs /path/to/ane_bridge.node
'use strict';

const addon = require(process.argv[2]);
const k = addon.kernels;
if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');

// Moves `buffer`'s memory to a new ArrayBuffer that nobody keeps (the old one is detached), then
// collects: the memory is freed while the kernel may still be running. ArrayBuffer.prototype
// .transfer (Node 22+) when present, else a structuredClone transfer list (Node 20).
function detachAndCollect(buffer) {
  if (typeof buffer.transfer === 'function') buffer.transfer();
  else structuredClone(buffer, { transfer: [buffer] });
  if (buffer.byteLength !== 0) throw new Error('the buffer did not detach');
}
function churn() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    // Reuse freed memory, so a kernel still writing to it would corrupt these.
    for (let j = 0; j < 8; j++) new Float32Array(1 << 18).fill(j);
  }
}

async function expectRejected(label, promise, code) {
  try {
    await promise;
  } catch (error) {
    if (error.code !== code) throw new Error(`${label}: rejected with ${error.code}: ${error.message}`);
    console.log(`ok ${label}: ${code}`);
    return;
  }
  throw new Error(`${label}: resolved, expected ${code}`);
}

function random(n, seed) {
  const out = new Float32Array(n);
  let a = seed;
  for (let i = 0; i < n; i++) {
    a = (a * 1103515245 + 12345) >>> 0;
    out[i] = (a / 2 ** 32) * 2 - 1;
  }
  return out;
}

async function main() {
  // 1. sgemmAsync: C (an output) and A (an input) detached and collected mid-run.
  {
    const n = 320;
    const A = random(n * n, 1);
    const B = random(n * n, 2);
    const C = new Float32Array(n * n);
    const running = k.sgemmAsync(false, false, n, n, n, 1, A, n, B, n, 0, C, n);
    detachAndCollect(C.buffer);
    detachAndCollect(A.buffer);
    churn();
    await expectRejected('sgemmAsync, C and A detached', running, 'ERR_ANE_BRIDGE_DETACHED');
  }
  // 2. fp32ToFp16Async: only the input detached: the result is complete and right.
  {
    const n = 1 << 20;
    const src = new Float32Array(n).fill(1.5);
    const dst = new Uint16Array(n);
    const running = k.fp32ToFp16Async(src, 0, n, dst, 0, n, 1, n, false);
    detachAndCollect(src.buffer);
    churn();
    await running;
    if (!dst.every((h) => h === 0x3e00))
      throw new Error('fp32ToFp16Async: wrong result after src was detached');
    console.log('ok fp32ToFp16Async, src detached: result complete');
  }
  // 3. fp16ToFp32Async: the output detached.
  {
    const n = 1 << 20;
    const src = new Uint16Array(n).fill(0x3c00);
    const dst = new Float32Array(n);
    const running = k.fp16ToFp32Async(src, 0, n, dst, 0, n, 1, n);
    detachAndCollect(dst.buffer);
    churn();
    await expectRejected('fp16ToFp32Async, dst detached', running, 'ERR_ANE_BRIDGE_DETACHED');
  }
  // 4. adamUpdateAsync (AdamW scalars): params detached; m and v are left as they were.
  {
    const n = 1 << 20;
    const params = random(n, 3);
    const grads = random(n, 4);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const fp16 = new Uint16Array(n);
    const running = k.adamUpdateAsync(
      params,
      grads,
      m,
      v,
      -1e-3,
      0.0316,
      0.1,
      0.999,
      0.001,
      1e-8,
      0,
      0.99999,
      1, // gradScale
      fp16,
    );
    detachAndCollect(params.buffer);
    detachAndCollect(grads.buffer);
    churn();
    await expectRejected('adamUpdateAsync, params detached', running, 'ERR_ANE_BRIDGE_DETACHED');
    if (!m.every((x) => x === 0) || !v.every((x) => x === 0) || !fp16.every((x) => x === 0)) {
      throw new Error('adamUpdateAsync: a discarded run wrote m, v or fp16Out');
    }
    console.log('ok adamUpdateAsync: nothing written');
  }
  // 5. Resizable ArrayBuffers are refused at the call, sync and async, before any work starts.
  {
    const buffer = new ArrayBuffer(4 * 4096, { maxByteLength: 8 * 4096 });
    const x = new Float32Array(buffer); // length-tracking
    for (const call of [() => k.sumOfSquares(x), () => k.sumOfSquaresAsync(x)]) {
      try {
        call();
        throw new Error('a resizable buffer was accepted');
      } catch (error) {
        if (error.code !== 'ERR_ANE_BRIDGE_RESIZABLE_BUFFER') throw error;
      }
    }
    buffer.resize(0);
    console.log('ok resizable buffer refused: ERR_ANE_BRIDGE_RESIZABLE_BUFFER');
  }
  // 6. A growable SharedArrayBuffer grown mid-run: used in place, the result is right.
  {
    const n = 1 << 20;
    const shared = new SharedArrayBuffer(4 * n, { maxByteLength: 16 * n });
    const src = new Float32Array(shared, 0, n).fill(2);
    const dst = new Uint16Array(new SharedArrayBuffer(2 * n));
    const running = k.fp32ToFp16Async(src, 0, n, dst, 0, n, 1, n, false);
    shared.grow(12 * n);
    churn();
    await running;
    if (!dst.every((h) => h === 0x4000))
      throw new Error('fp32ToFp16Async over a growable SharedArrayBuffer: wrong');
    console.log('ok growable SharedArrayBuffer grown mid-run: result right');
  }
  console.log('done');
}

main().catch((error) => {
  console.error(error?.stack ?? error);
  process.exitCode = 1;
});
