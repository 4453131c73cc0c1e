/** The host-kernel implementations a parity test runs on, each picked explicitly. */
import { capabilities, hostKernels } from 'ane-bridge';

export interface KernelImplementation {
  name: 'ts' | 'native';
  label: string;
  available: boolean;
}

export function kernelImplementations(): KernelImplementation[] {
  const native = hostKernels.native !== null;
  return [
    { name: 'ts', label: 'the TypeScript kernels', available: true },
    {
      name: 'native',
      label: native
        ? 'the native kernels'
        : `the native kernels (skipped: ${capabilities().hostKernels.reason})`,
      available: native,
    },
  ];
}
