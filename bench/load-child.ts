/**
 * Runs a benchmark's load generator in a child process (so the sender's work never shares the
 * receiver's event loop or CPU accounting). The child is the same bench file, re-run through
 * tsx with its options in an environment variable; it reports one result over IPC and exits.
 *
 *   // in bench/foo.ts, at module level:
 *   serveLoadChild(CHILD_ENV, sendLoad);
 *   // in run():
 *   const result = await forkLoadChild<Result>(import.meta.url, CHILD_ENV, options);
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Forks `moduleUrl` with `options` in `envName`; resolves with the result the child sends. */
export function forkLoadChild<R>(moduleUrl: string, envName: string, options: unknown): Promise<R> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(moduleUrl), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, [envName]: JSON.stringify(options) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: { value: R } | null = null;
    child.on('message', (m) => {
      result = { value: m as R };
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (result !== null) resolve(result.value);
      else reject(new Error(`bench load child ${envName} exited with code ${String(code)} without a result`));
    });
  });
}

/** In the child (when `envName` is set and there is an IPC channel): runs `load` and reports its result. */
/** `load` takes the JSON-decoded options object the parent passed (trusted: it is our own parent). */
export function serveLoadChild(envName: string, load: (options: never) => Promise<unknown>): void {
  const text = process.env[envName];
  if (text === undefined || process.send === undefined) return;
  const send = process.send.bind(process);
  void load(JSON.parse(text) as never).then(
    (r) => send(r, () => process.disconnect()),
    (err: unknown) => {
      console.error(`bench load child ${envName} failed:`, err);
      process.exit(1);
    },
  );
}
