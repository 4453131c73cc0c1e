#!/usr/bin/env node
// The `ane-train` command. A committed stub so the package manager can link the bin before dist/ is built.
try {
  await import('../dist/cli.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli.js')) {
    console.error('ane-train: ane-train is not built yet. In the ane-sdk repository run `pnpm build` first.');
    process.exit(2);
  }
  throw error;
}
