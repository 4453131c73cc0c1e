import { version as packageVersion } from '../package.json';

/** The package's version, read from its package.json at build time. */
export const version: string = packageVersion;
