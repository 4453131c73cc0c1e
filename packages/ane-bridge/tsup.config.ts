import { defineConfig } from 'tsup';

export default defineConfig({
  // sim-worker: the simulator's device thread (src/sim/device-thread.ts), started as a file.
  entry: { index: 'src/index.ts', cli: 'src/cli.ts', 'sim-worker': 'src/sim/device-thread-worker.ts' },
  format: ['esm', 'cjs'],
  // The declarations use types that come with @types/node (NodeJS.*, Disposable, Symbol.dispose):
  // referencing them keeps a consumer whose tsconfig lists `types` (or none) compiling.
  dts: { banner: '/// <reference types="node" />' },
  sourcemap: false,
  clean: true,
  target: 'node20',
  shims: true,
});
