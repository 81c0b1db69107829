import { Command, Flags } from '@oclif/core';
import { loadFleet } from '../lib/config/load-config.js';
import { fleetStatus, formatStatus } from '../lib/fleet-status.js';
import { configureColor } from '../lib/output/mode.js';
import { reportError } from '../lib/report-error.js';
import { timerMs } from '../lib/config/duration.js';

export default class Status extends Command {
  static override summary = "Show the fleet's live state beside the last rollout's journal (read-only).";

  static override description =
    'For every node: whether it is reachable, its service state and process (PID), its health, its state and sessions in the load balancer, and what the journal recorded. Also shows whether a rollout holds the lock. Touches nothing.';

  static override examples = [
    { description: 'Show the fleet.', command: '<%= config.bin %> <%= command.id %> -c fleet.yaml' },
    {
      description: 'As one JSON document.',
      command: '<%= config.bin %> <%= command.id %> -c fleet.yaml --json',
    },
  ];

  static override flags = {
    config: Flags.string({ char: 'c', summary: 'Fleet config file (YAML).', default: 'fleet.yaml' }),
    json: Flags.boolean({ summary: 'Print one JSON document.', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Status);
    configureColor({ json: flags.json, isTTY: Boolean(process.stdout.isTTY), env: process.env });
    try {
      const fleet = await loadFleet(flags.config);
      const status = await fleetStatus(fleet, AbortSignal.timeout(timerMs(fleet.deadlines.command * 2)));
      process.stdout.write(flags.json ? `${JSON.stringify(status)}\n` : `${formatStatus(status)}\n`);
    } catch (error) {
      this.exit(reportError(error, process.stderr));
    }
  }
}
