export { version } from '../package.json';
export { type Capabilities, capabilities, describeCapabilities } from './capabilities';
export * from './errors';
export {
  type NativeLoadOptions,
  type NativeLoadResult,
  loadNativeAddon,
  NATIVE_ABI_VERSION,
  type SimdLevel,
} from './native/loader';
