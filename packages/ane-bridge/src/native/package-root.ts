import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The ane-bridge package directory, found from this module whether it runs from src/ or dist/. */
export function findPackageRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'ane-bridge') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`ane-bridge: package.json not found above ${start}`);
    dir = parent;
  }
}
