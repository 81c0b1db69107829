import { homedir } from 'node:os';
import { join } from 'node:path';

/** `~/x` → the home directory's `x`, as a shell would expand it. */
export const expandHome = (path: string): string =>
  path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
