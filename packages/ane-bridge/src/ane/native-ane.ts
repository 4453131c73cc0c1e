/**
 * The ANE device as the native addon exports it (native/ane/ane_addon.h): `addon.ane` in macOS
 * arm64 builds, `null` elsewhere, and the same object over a fake platform in the test-only addon.
 * Errors it throws carry a `code` (see `NativeAneErrorCode`); ane-backend.ts maps them to typed errors.
 */
import type { TensorSpec } from 'ane-ir/mil';

export type NativeAneErrorCode =
  | 'ANE_UNAVAILABLE'
  | 'ANE_COMPILE'
  | 'ANE_BUDGET'
  | 'ANE_DEVICE'
  | 'ANE_INPUT';

export interface NativeAneCompileOptions {
  /** Smallest surface to allocate, in bytes (rule io-min-surface); every surface of a group is as large as its largest tensor. */
  minSurfaceBytes?: number;
}

/** A compiled, loaded program with one IOSurface per input and output. */
export interface NativeAneModel {
  /** The framework's hexStringIdentifier: content-derived, names the staging directory. */
  readonly hexIdentifier: string;
  /** NSTemporaryDirectory()/<hexIdentifier>: model.mil and weights/, removed with the last model staged there. */
  readonly stagingDirectory: string;
  readonly inputSurfaceBytes: number;
  readonly outputSurfaceBytes: number;
  readonly isFreed: boolean;
  /** Copies inputs in, evaluates on the calling thread, copies outputs out (exact tensor byte sizes). */
  run(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void;
  /** The same on a worker thread: the JS thread stays free. Do not touch the buffers until it settles. */
  runAsync(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): Promise<void>;
  /** Unloads, releases every surface and object and removes the staging directory. Idempotent. */
  free(): void;
}

export interface NativeAne {
  compile(
    mil: string,
    weights: ReadonlyMap<string, Uint8Array>,
    inputs: readonly TensorSpec[],
    outputs: readonly TensorSpec[],
    options?: NativeAneCompileOptions,
  ): NativeAneModel;
  /** compileWithQoS calls made by this process, failed ones included. */
  compileCount(): number;
  compileLimit(): number;
  setCompileLimit(limit: number): void;
  liveModels(): number;
}
