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
