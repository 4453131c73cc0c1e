import { defineConfig } from 'tsup';

export default defineConfig({
  // worker-main: the device worker process ane-train forks (runtime/worker-session.ts finds it
  // beside index.js / index.cjs).
  entry: { index: 'src/index.ts', 'worker-main': 'src/runtime/worker-main.ts', cli: 'src/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: false,
  clean: true,
  target: 'node20',
  shims: true,
});
