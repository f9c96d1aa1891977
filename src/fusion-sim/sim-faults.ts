import { z } from 'zod';

/** The faults the Fusion stand-in can inject (see fusion-sim.ts), and their schema for POST /_sim/fault and schedules. */

export type SimFault =
  | { readonly kind: 'refuse' }
  | { readonly kind: 'status'; readonly status: number; readonly retryAfter?: string; readonly count?: number; readonly scope?: 'upload' | 'auth' | 'all'; readonly after?: number }
  | { readonly kind: 'slow'; readonly delayMs: number; readonly count?: number; readonly scope?: 'upload' | 'auth' | 'all' }
  | { readonly kind: 'reset-mid-body'; readonly count?: number }
  | { readonly kind: 'reset-after-body'; readonly count?: number }
  | { readonly kind: 'expire-tokens' }
  | { readonly kind: 'reject-auth'; readonly status?: 401 | 403; readonly count?: number };

const faultSchema = z.union([
  z.strictObject({ kind: z.literal('refuse') }),
  z.strictObject({ kind: z.literal('status'), status: z.int().min(100).max(599), retryAfter: z.string().optional(), count: z.int().min(1).optional(), scope: z.enum(['upload', 'auth', 'all']).optional(), after: z.int().min(0).optional() }),
  z.strictObject({ kind: z.literal('slow'), delayMs: z.int().min(0).max(600_000), count: z.int().min(1).optional(), scope: z.enum(['upload', 'auth', 'all']).optional() }),
  z.strictObject({ kind: z.literal('reset-mid-body'), count: z.int().min(1).optional() }),
  z.strictObject({ kind: z.literal('reset-after-body'), count: z.int().min(1).optional() }),
  z.strictObject({ kind: z.literal('expire-tokens') }),
  z.strictObject({ kind: z.literal('reject-auth'), status: z.union([z.literal(401), z.literal(403)]).optional(), count: z.int().min(1).optional() }),
]);

export function parseSimFault(value: unknown): SimFault | null {
  if (value === null) return null;
  return faultSchema.parse(value) as SimFault;
}

export interface ScheduledFault {
  /** Ms after start. */
  readonly atMs: number;
  /** null clears the fault. */
  readonly fault: SimFault | null;
}
