/**
 * Argument checks shared by every host kernel (TS twin and native alike): a mismatch is a
 * RangeError that names the kernel, the argument, what was expected and what was found.
 */

export function checkLength(
  kernel: string,
  name: string,
  actual: number,
  expected: number,
  expectedFrom: string,
): void {
  if (actual !== expected) {
    throw new RangeError(
      `${kernel}: ${name} has ${actual} elements, expected ${expected} (${expectedFrom}); pass arrays of equal length`,
    );
  }
}

export function checkAtLeast(
  kernel: string,
  name: string,
  actual: number,
  needed: number,
  why: string,
): void {
  if (actual < needed) {
    throw new RangeError(`${kernel}: ${name} has ${actual} elements, needs at least ${needed} (${why})`);
  }
}

export function checkNonNegativeInteger(kernel: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${kernel}: ${name} must be a non-negative integer, got ${value}`);
  }
}

export function checkPositiveInteger(kernel: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${kernel}: ${name} must be a positive integer, got ${value}`);
  }
}

export function checkFinite(kernel: string, name: string, value: number): void {
  if (!Number.isFinite(value))
    throw new RangeError(`${kernel}: ${name} must be a finite number, got ${value}`);
}
