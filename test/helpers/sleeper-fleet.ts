import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tempDir } from './cli.js';
import { sleeperFleet } from './sleepers.js';

/**
 * A sleeper fleet (sleepers.ts) in its own temp dir behind a "load balancer" made of one state file per
 * node (`up` or `maint`), with accessors for what the safety tests inspect: the LB files and the journal.
 */
export class SleeperFleet {
  readonly dir = tempDir('graceroll-sleepers-');
  private fleet?: ReturnType<typeof sleeperFleet>;
  constructor(readonly nodes = ['a', 'b', 'c']) {}

  get name(): string {
    return this.current().name;
  }

  config(extra = '', options: { drainDeadline?: string; slowDrain?: string } = {}): string {
    this.fleet = sleeperFleet(this.dir, {
      nodes: this.nodes,
      lb: true,
      extra,
      drainDeadline: options.drainDeadline ?? '5s',
      slowDrain: options.slowDrain !== undefined,
      lockPath: join(this.dir, 'rollout.lock'),
    });
    return this.fleet.config;
  }

  start(): void {
    if (!this.fleet) this.config();
    this.current().start();
  }

  pid = (node: string): string => this.current().pid(node);
  lb = (node: string): string => readFileSync(join(this.dir, `${node}.lb`), 'utf8').trim();
  /** The journal graceroll keeps beside the config, named after the config file. */
  journalPath = (): string =>
    join(this.dir, '.graceroll', `${basename(this.current().config).replace(/\.ya?ml$/, '')}.journal.json`);

  journal = (): any => JSON.parse(readFileSync(this.journalPath(), 'utf8'));
  touch = (file: string): void => writeFileSync(join(this.dir, file), '');

  cleanup(): void {
    this.fleet?.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private current() {
    if (!this.fleet) throw new Error('SleeperFleet: call config() first');
    return this.fleet;
  }
}
