/**
 * The messages between the parent and a device worker process (`child_process.fork` with
 * `serialization: 'advanced'`, so Maps and typed arrays pass as they are). Every request carries an
 * id and gets exactly one response with that id: its result, or the error the worker met,
 * serialized here and revived in the parent as the same class (by name) with the same message.
 */
import * as bridge from 'ane-bridge';
import * as ir from 'ane-ir';
import * as errors from '../errors';
import type { SessionSpec, StepResult } from './session';

/** What a worker's device has compiled and may still compile. */
export interface WorkerBudget {
  used: number;
  limit: number;
}

export type WorkerRequest =
  | { id: number; type: 'open'; session: number; spec: SessionSpec }
  | { id: number; type: 'writeWeights'; session: number; weights: Map<string, Float32Array> }
  | { id: number; type: 'step'; session: number; tokens: Int32Array; lossScale: number }
  | { id: number; type: 'dispose'; session: number };

export interface OpenResult {
  programs: number;
  backend: 'ane' | 'sim';
  chip: string;
  budget: WorkerBudget;
}

export interface WorkerResults {
  open: OpenResult;
  writeWeights: null;
  step: StepResult;
  dispose: null;
}

export type WorkerMessage =
  /** Sent once the worker listens for requests. */
  | { type: 'ready'; pid: number }
  | { type: 'response'; id: number; ok: true; result: unknown }
  | { type: 'response'; id: number; ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** The error's own enumerable fields (`field`, `details`, `ruleId`, …), when they clone. */
  fields: Record<string, unknown>;
}

export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (key === 'name' || key === 'message' || key === 'stack') continue;
    try {
      structuredClone(value);
      fields[key] = value;
    } catch {
      // A field that does not clone (a function, a socket) stays behind.
    }
  }
  return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}), fields };
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Error classes a worker can throw, by name: ane-train's, ane-bridge's, ane-ir's and the built-ins. */
const ERROR_CLASSES: ReadonlyMap<string, ErrorClass> = (() => {
  const classes = new Map<string, ErrorClass>();
  for (const Builtin of [Error, TypeError, RangeError, SyntaxError, ReferenceError])
    classes.set(Builtin.name, Builtin);
  for (const module of [ir, bridge, errors] as Record<string, unknown>[]) {
    for (const [name, value] of Object.entries(module)) {
      if (typeof value === 'function' && value.prototype instanceof Error)
        classes.set(name, value as ErrorClass);
    }
  }
  return classes;
})();

/**
 * The worker's error as the parent throws it: an instance of the same class when the parent knows
 * it (so `instanceof DataError` works across the process boundary), with the same name, message and
 * fields; the worker's stack follows the parent's.
 */
export function reviveError(serialized: SerializedError, context: string): Error {
  const Class = ERROR_CLASSES.get(serialized.name) ?? Error;
  const error = Object.create(Class.prototype) as Error;
  const parentStack = new Error(serialized.message).stack ?? '';
  Object.defineProperty(error, 'message', { value: serialized.message, writable: true, configurable: true });
  Object.assign(error, serialized.fields);
  if (error.name !== serialized.name)
    Object.defineProperty(error, 'name', { value: serialized.name, writable: true, configurable: true });
  const workerStack = serialized.stack
    ? `\n    --- in ${context} ---\n${serialized.stack.split('\n').slice(1).join('\n')}`
    : '';
  Object.defineProperty(error, 'stack', {
    value: `${serialized.name}: ${serialized.message}\n${parentStack.split('\n').slice(1).join('\n')}${workerStack}`,
    writable: true,
    configurable: true,
  });
  return error;
}
