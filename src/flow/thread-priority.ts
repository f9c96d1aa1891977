import { constants as osConstants, setPriority } from 'node:os';

/**
 * Scheduling priorities of sealflow's threads, from most to least urgent:
 *   1. the main thread's receive loops (normal): UDP cannot be paused, so the thread that
 *      empties the socket buffers must win when the cores are busy;
 *   2. the ingest worker (below normal): its backlog waits in the bounded channel instead
 *      (counted drops at the channel's hard limit), and its average rate is unchanged;
 *      The batch compressor and the WAL checkpointer (spool/batch-compressor.ts,
 *      spool/wal-checkpointer.ts) share this level: they do part of the ingest worker's work;
 *   3. the drain's upload workers (low): a backlog waits in the spool, encrypted, for as long
 *      as it must, so catching up after an outage never takes CPU from live ingest.
 */
export type ThreadPriority = 'ingest-worker' | 'batch-compressor' | 'wal-checkpointer' | 'upload-worker';

const NICE: Readonly<Record<ThreadPriority, number>> = {
  'ingest-worker': osConstants.priority.PRIORITY_BELOW_NORMAL,
  'batch-compressor': osConstants.priority.PRIORITY_BELOW_NORMAL,
  'wal-checkpointer': osConstants.priority.PRIORITY_BELOW_NORMAL,
  'upload-worker': osConstants.priority.PRIORITY_LOW,
};

/**
 * Lowers the calling thread's priority to its role's. Linux only: there setpriority(PRIO_PROCESS,
 * 0) applies to the calling thread alone; elsewhere it would lower the whole process, so it is
 * left alone.
 */
export function lowerThreadPriority(role: ThreadPriority): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(NICE[role]);
  } catch {
    // Lowering needs no privilege; if the platform refuses anyway, run at normal priority.
  }
}
