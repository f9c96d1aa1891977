// Preloaded into a child probe (NODE_OPTIONS=--import, see audit-fixtures.ts clockOffsetEnv):
// shifts Date.now() by SEALFLOW_TEST_CLOCK_OFFSET_MS, in the main thread and in every worker
// thread (they inherit the preload), like libfaketime does for a whole process. The audit
// tests use it to let an ended key epoch pass its shredding grace without waiting minutes.
const offset = Number(process.env.SEALFLOW_TEST_CLOCK_OFFSET_MS ?? '0');
if (Number.isFinite(offset) && offset !== 0) {
  const realNow = Date.now;
  Date.now = () => realNow() + offset;
}
