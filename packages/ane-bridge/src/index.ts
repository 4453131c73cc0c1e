export { version } from '../package.json';
export { type Capabilities, capabilities, describeCapabilities } from './capabilities';
export * from './errors';
export {
  loadNativeAddon,
  NATIVE_ABI_VERSION,
  type NativeLoadOptions,
  type NativeLoadResult,
  type SimdLevel,
} from './native/loader';
