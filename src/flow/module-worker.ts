import { Worker, type WorkerOptions } from 'node:worker_threads';

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
 * Waits until a helper thread reports that it is ready. `classify` looks at each message the
 * thread posts during start-up: 'ready', an Error (start-up failed, e.g. a file it must open),
 * or undefined (not about start-up: left to the caller's own listeners). A thread that fails,
 * errors or exits first is terminated and the promise rejects, naming `what`. A started thread
 * is unref'd: an idle helper must never keep the process alive.
 */
export async function whenWorkerReady(worker: Worker, what: string, classify: (msg: unknown) => 'ready' | Error | undefined): Promise<void> {
  let onExit: (code: number) => void = () => undefined;
  let onError: (err: Error) => void = () => undefined;
  let onMessage: (msg: unknown) => void = () => undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onExit = (code) => {
        reject(new Error(`the ${what} thread exited during start-up (code ${String(code)})`));
      };
      onError = reject;
      onMessage = (msg) => {
        const verdict = classify(msg);
        if (verdict === 'ready') resolve();
        else if (verdict !== undefined) reject(verdict);
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
