import chalk from 'chalk';
import type { OutputMode } from './types.js';

export interface OutputEnvironment {
  json: boolean;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
}

/** JSON when asked; the live view only on a real terminal outside CI; plain lines otherwise. */
export function chooseOutputMode({ json, isTTY, env }: OutputEnvironment): OutputMode {
  if (json) return 'json';
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false';
  if (!isTTY || ci || env.TERM === 'dumb') return 'plain';
  return 'tty';
}

/** chalk follows FORCE_COLOR but not NO_COLOR (no-color.org), so the decision is made here. */
export function configureColor({ isTTY, env }: OutputEnvironment): void {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') chalk.level = 0;
  else if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false')
    chalk.level = Math.max(chalk.level, 1) as 1 | 2 | 3;
  else if (!isTTY || env.TERM === 'dumb') chalk.level = 0;
}
