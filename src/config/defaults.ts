import { ConfigSchema, type ParsedConfig } from './schema.js';

/**
 * Every setting's default as the schema defines it: the schema parsed from an empty document,
 * deep-frozen. A module that takes a setting reads its default from here (stages may import
 * this file and nothing else of src/config, see test/unit/architecture.test.ts), so each
 * default is defined once, in schema.ts, and `sealflow spool status` shows the quota the probe
 * runs with. Tunables that are not settings stay named constants in their modules.
 */
export const DEFAULTS: DeepReadonly<ParsedConfig> = deepFreeze(ConfigSchema.parse({}));

/** Defaults of each entry of a list setting (listeners.udp[]), which an empty document does not show. */
export { DEFAULT_RECEIVE_BUFFER_BYTES, MAX_UDP_DATAGRAM_BYTES } from './schema.js';

type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/** Freezes `value` and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
