import type { CommandMain } from './command.js';
import { ExitCode } from './command.js';

// PLACEHOLDER: replaced by the real command; must not survive to a landing.
export const main: CommandMain = (_argv, io) => {
  io.stderr.write('sealflow config: not built yet\n');
  return Promise.resolve(ExitCode.Software);
};
