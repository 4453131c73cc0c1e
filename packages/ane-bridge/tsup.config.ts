import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
  format: ['esm', 'cjs'],
  // The declarations use types that come with @types/node (NodeJS.*, Disposable, Symbol.dispose):
  // referencing them keeps a consumer whose tsconfig lists `types` (or none) compiling.
  dts: { banner: '/// <reference types="node" />' },
  sourcemap: false,
  clean: true,
  target: 'node20',
  shims: true,
});
