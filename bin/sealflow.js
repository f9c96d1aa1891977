#!/usr/bin/env node
// Launcher for the compiled CLI (built into dist/ by `npm run build`, which `npm ci` runs via `prepare`).
import('../dist/main.js').catch((err) => {
  process.stderr.write(`sealflow: cannot load dist/main.js (${err?.code ?? err}); run \`npm run build\` first\n`);
  process.exit(70);
});
