import { fileURLToPath } from 'node:url';

/**
 * The conformance corpus inside the repository: the copy ane-bridge ships (a test there checks it
 * equals the project's shared corpus when that folder is present). Tests read it from here so a
 * fresh clone needs nothing outside the repository.
 */
export const CONFORMANCE_DIR = fileURLToPath(
  new URL('../../packages/ane-bridge/conformance', import.meta.url),
);
