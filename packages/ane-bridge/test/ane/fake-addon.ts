/**
 * Loads the test-only addon that runs the real ANE bridge (native/ane/) over the fake platform
 * (native/fake/). Under `native/ane-test/run.cjs` it is the AddressSanitizer build (ANE_FAKE_ADDON);
 * otherwise it is built here, without sanitizers, on first use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeAne } from '../../src/ane/native-ane';

export interface FakeCompileRecord {
  hex: string;
  directory: string;
  succeeded: boolean;
  files: { path: string; bytes: Uint8Array }[];
}

export interface FakeControls {
  /** Plays NSTemporaryDirectory(): staging directories are created here. */
  temporaryDirectory: string;
  calls(): string[];
  clearCalls(): void;
  violations(): string[];
  liveObjects(): string[];
  compiles(): FakeCompileRecord[];
  surfaces(): { properties: Record<string, number>; allocSize: number }[];
  sleeps(): number[];
  lastEvaluationInputs(): Uint8Array[];
  frameworkCompiles(): number;
  loadedModels(): number;
  failNextLoads(count: number): void;
  failNextEvaluate(description: string): void;
  failNextUnload(description: string): void;
  failNextSurfaceCreate(): void;
  failNextLock(): void;
  failNextWrite(): void;
  setFrameworkCompileLimit(limit: number): void;
  setEvaluator(
    evaluator:
      | ((mil: string, weights: Map<string, Uint8Array>, inputs: Uint8Array[], outputs: Uint8Array[]) => void)
      | null,
  ): void;
}

export interface FakeAddon {
  ane: NativeAne;
  fake: FakeControls;
}

interface BuildModule {
  findCompiler(): string | undefined;
  buildFakeAddon(options: { compiler: string; sanitize?: boolean }): Promise<string>;
}

const require = createRequire(import.meta.url);

/** The fake addon's path: built if needed. Throws why it cannot be. */
export async function fakeAddonPath(): Promise<string> {
  if (process.env.ANE_FAKE_ADDON) return process.env.ANE_FAKE_ADDON;
  const build = require('../../native/ane-test/build.cjs') as BuildModule;
  const compiler = build.findCompiler();
  if (!compiler) throw new Error('no C++ compiler (install g++ or clang++, or set CXX)');
  return build.buildFakeAddon({ compiler, sanitize: false });
}

/**
 * Loads the fake addon into this process, or returns why it cannot (the tests then skip, saying so).
 * Its NSTemporaryDirectory() is a fresh directory of this process; `removeTemporaryDirectory` (for
 * afterAll) deletes it, as vitest may end its workers without running exit handlers.
 */
export async function loadFakeAddon(): Promise<
  { addon: FakeAddon; path: string; removeTemporaryDirectory(): void } | { reason: string }
> {
  let path: string;
  try {
    path = await fakeAddonPath();
  } catch (error) {
    return { reason: (error as Error).message.split('\n')[0]! };
  }
  // Read by the addon when it loads (once per process).
  process.env.ANE_FAKE_TMPDIR ??= mkdtempSync(join(tmpdir(), 'ane-fake-'));
  const root = process.env.ANE_FAKE_TMPDIR;
  return {
    addon: require(path) as FakeAddon,
    path,
    removeTemporaryDirectory: () => rmSync(root, { recursive: true, force: true }),
  };
}
