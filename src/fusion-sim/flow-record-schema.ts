import { z } from 'zod';

/**
 * The Fusion flow record as the stand-in validates it: the fields of FUSION.md's record table
 * that sealflow sends (src/flow/fusion-record.ts), with their types. Unknown keys are
 * rejected, so a serializer change that adds or misspells a field fails the tests.
 *
 * Exact counters (`bits`, `packets`): a non-negative safe integer, or a decimal string for
 * values beyond 2^53 - 1.
 */
const u8 = z.int().min(0).max(0xff);
const u16 = z.int().min(0).max(0xffff);
const u32 = z.int().min(0).max(0xffffffff);
// bits = octets × 8 reaches 2^67 (21 decimal digits).
const counter = z.union([z.int().min(0), z.string().regex(/^(0|[1-9][0-9]{0,20})$/)]);
const ip = z.union([z.ipv4(), z.ipv6()]);
const asInfo = z.strictObject({ asnumber: u32, asorg: z.string() });
const tcpflags = z.strictObject({
  urg: z.boolean(), ack: z.boolean(), psh: z.boolean(), rst: z.boolean(), syn: z.boolean(),
  fin: z.boolean(), ece: z.boolean(), cwr: z.boolean(), ns: z.boolean(),
});
const finite = z.number().min(0).refine(Number.isFinite, 'must be finite');
const ms = z.int().min(0);

export const fusionFlowRecordSchema = z.strictObject({
  timestamp: z.int().min(0),
  flowtype: z.enum(['netflow', 'sflow']),
  flowversion: z.union([z.literal(5), z.literal(9), z.literal(10)]),
  flowsrcip: z.string().min(1),
  ipversion: z.union([z.literal(0), z.literal(4), z.literal(6)]),
  srcip: ip.nullable(),
  dstip: ip.nullable(),
  srcport: u16.nullable(),
  dstport: u16.nullable(),
  protocol: z.string().min(1).nullable(),
  protocolint: u8.nullable(),
  bits: counter,
  packets: counter,
  pbratio: finite,
  flowbrate: finite,
  flowprate: finite,
  tos: u8.nullable(),
  tcpflags: tcpflags.nullable(),
  tcpflagsint: u16.nullable(),
  input: u32.nullable(),
  output: u32.nullable(),
  srcmask: z.int().min(0).max(128).nullable(),
  dstmask: z.int().min(0).max(128).nullable(),
  nexthop: ip.nullable(),
  bgpnexthop: ip.nullable(),
  srcas: asInfo.nullable(),
  dstas: asInfo.nullable(),
  srcvlan: z.int().min(0).max(4095).nullable(),
  dstvlan: z.int().min(0).max(4095).nullable(),
  icmptype: u8.nullable(),
  icmpcode: u8.nullable(),
  start: ms.nullable(),
  end: ms.nullable(),
  duration: ms.nullable(),
  samplerate: z.int().min(1),
  uptime: ms.nullable(),
});

export type ValidatedFusionFlowRecord = z.infer<typeof fusionFlowRecordSchema>;

/** First problem of an invalid record as "path: message", without echoing the value. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid record';
  const path = issue.path.map(String).join('.');
  return `${path === '' ? '(record)' : path}: ${issue.message}`;
}
