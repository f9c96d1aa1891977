import { parentPort, Worker, type MessagePort, type Transferable, type WorkerOptions } from 'node:worker_threads';

/**
 * Worker threads, and the one message style every pair of threads uses: each message is an
 * object tagged by `type`, each direction a discriminated union declared next to the thread's
 * code (src/ingest-worker/messages.ts, src/spool/batch-compressor.ts,
 * src/spool/wal-checkpointer.ts, src/drain/upload-pool.ts), and both ends post and receive
 * through the typed channels below. A helper thread's first message is a StartupMessage.
 */
export interface ThreadMessage {
  readonly type: string;
}

/** What a thread posts once it has started: ready, or why it could not start (its setting, when one is to blame). */
export type StartupMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'startup-error'; readonly message: string; readonly code: string | null; readonly setting: string | null };

/** One end of a thread pair: posts `Out`, receives `In`. */
export interface ThreadChannel<In extends ThreadMessage, Out extends ThreadMessage> {
  post(msg: Out, transfer?: readonly Transferable[]): void;
  /** Every message from the other end. */
  on(handler: (msg: In) => void): void;
}

/** The main thread's end of `worker`. */
export function workerChannel<In extends ThreadMessage, Out extends ThreadMessage>(worker: Worker): ThreadChannel<In, Out> {
  return {
    post: (msg, transfer) => {
      worker.postMessage(msg, transfer);
    },
    on: (handler) => {
      worker.on('message', (msg: In) => {
        handler(msg);
      });
    },
  };
}

/** A worker thread's end towards its parent (or `port`, a dedicated MessagePort); throws outside a worker thread. */
export function parentChannel<In extends ThreadMessage, Out extends ThreadMessage>(port: MessagePort | null = parentPort): ThreadChannel<In, Out> & { close(): void } {
  if (port === null) throw new Error('parentChannel: not in a worker thread');
  return {
    post: (msg, transfer) => {
      port.postMessage(msg, transfer);
    },
    on: (handler) => {
      port.on('message', (msg: In) => {
        handler(msg);
      });
    },
    close: () => {
      port.close();
    },
  };
}

/** A start-up failure as a StartupMessage: the error's message, code and setting (SealflowError / SQLite carry them). */
export function startupError(err: unknown, defaultCode: string | null = null): StartupMessage {
  const e = err as { message?: unknown; code?: unknown; setting?: unknown };
  return {
    type: 'startup-error',
    message: typeof e.message === 'string' ? e.message : String(err),
    code: typeof e.code === 'string' ? e.code : defaultCode,
    setting: typeof e.setting === 'string' ? e.setting : null,
  };
}

/**
 * Starts a worker thread on a sibling module given without its extension (`new URL('./x',
 * import.meta.url)`): `x.js` when running compiled, or `x.ts` when running from source under
 * tsx (tests, `node --import tsx`), where the TypeScript loader must be registered inside the
 * new thread before the module is imported. `callerUrl` is the caller's `import.meta.url`,
 * which tells the two apart. A module that fails to load ends the thread with exit code 70
 * (EX_SOFTWARE) after printing the error.
 */
export function startModuleWorker(callerUrl: string, base: URL, options: WorkerOptions): Worker {
  if (callerUrl.endsWith('.ts')) {
    const target = JSON.stringify(`${base.href}.ts`);
    const code = `import('tsx/esm/api').then((api) => { api.register(); return import(${target}); }).catch((err) => { console.error(err); process.exit(70); });`;
    return new Worker(code, { ...options, eval: true });
  }
  return new Worker(new URL(`${base.href}.js`), options);
}

/**
 * Waits for a helper thread's StartupMessage. A thread that reports a start-up error, errors
 * or exits first is terminated and the promise rejects (an exit naming `what`); other messages are left
 * to the caller's own listeners. A started thread is unref'd: an idle helper must never keep
 * the process alive.
 */
export async function whenWorkerReady(worker: Worker, what: string): Promise<void> {
  let onExit: (code: number) => void = () => undefined;
  let onError: (err: Error) => void = () => undefined;
  let onMessage: (msg: ThreadMessage) => void = () => undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onExit = (code) => {
        reject(new Error(`the ${what} thread exited during start-up (code ${String(code)})`));
      };
      onError = reject;
      onMessage = (msg) => {
        if (msg.type === 'ready') resolve();
        else if (msg.type === 'startup-error') {
          // The thread's message names itself and what failed (e.g. the file it could not open).
          const m = msg as Extract<StartupMessage, { type: 'startup-error' }>;
          reject(Object.assign(new Error(m.message), { code: m.code }));
        }
      };
      worker.on('exit', onExit);
      worker.on('error', onError);
      worker.on('message', onMessage);
    });
  } catch (err) {
    await worker.terminate();
    throw err;
  } finally {
    worker.off('exit', onExit);
    worker.off('error', onError);
    worker.off('message', onMessage);
  }
  worker.unref();
}
