/**
 * What each piece of decoder state is charged against the state budget (state-budget.ts):
 * upper estimates of what V8 keeps for it, checked against the heap by
 * test/unit/decode-state-budget.test.ts. The caches of compiled decoders and fused writers are
 * bounded with the same per-template estimate.
 */

/** Estimated bytes per piece of decoder state (upper bounds; see above). */
export const STATE_COST = Object.freeze({
  /** SessionState, its key, its entries in the session maps. */
  session: 2048,
  /** DomainState with its template and sampler maps and sequence state. */
  domain: 1024,
  /** A template: the object, its field list and plans, its compiled record decoder... */
  templateBase: 2048,
  /** ...and this much per field (plans, decoder code; biflow templates compile a second decoder). */
  templateField: 384,
  /** One sampler entry of a domain's sampler map. */
  sampler: 64,
  /** A held data set besides its bytes (the PendingSet and its copy's ArrayBuffer). */
  heldSet: 512,
});

export function templateCost(fieldCount: number): number {
  return STATE_COST.templateBase + STATE_COST.templateField * fieldCount;
}

export function heldSetCost(bytes: number): number {
  return STATE_COST.heldSet + bytes;
}
