import { Command, Flags } from '@oclif/core';
import { restartFleet } from '../lib/restart-fleet.js';
import { reportError } from '../lib/report-error.js';

export default class RestartFleet extends Command {
  static override summary = 'Restart every node of a fleet, a batch at a time, without dropping requests.';

  static override description = `For each node: take it out of the load balancer, wait for its sessions to end, send the graceful signal, wait until drain probes pass (escalating at the deadline), restart it, verify a new healthy process, and put it back before moving on.

Output is a live view on a terminal, plain timestamped lines when stdout is not a terminal or CI is set, and one JSON event per line with --json. A first Ctrl-C finishes the nodes in flight and starts no new ones; a second cuts their waits short. No node is left out of rotation without being named.

Exit codes: 0 ok, 1 rollout failed, 2 usage or config error, 3 preflight refused, 4 lock held, 5 deadline passed, 6 every node back but a drain was forced (escalation, or the process exited before it drained), 129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM.`;

  static override examples = [
    {
      description: 'Preview every batch, step and command; touches nothing.',
      command: '<%= config.bin %> <%= command.id %> -c fleet.yaml --dry-run',
    },
    {
      description: 'Roll the fleet, one node at a time.',
      command: '<%= config.bin %> <%= command.id %> -c fleet.yaml',
    },
    {
      description: 'Roll two nodes only, from a CI job, as JSON events.',
      command: '<%= config.bin %> <%= command.id %> -c fleet.yaml --nodes web1,web2 --yes --json',
    },
    {
      description: 'Two nodes at a time.',
      command: '<%= config.bin %> <%= command.id %> -c fleet.yaml --batch-size 2',
    },
  ];

  static override flags = {
    config: Flags.string({ char: 'c', summary: 'Fleet config file (YAML).', default: 'fleet.yaml' }),
    nodes: Flags.string({
      summary: 'Only these nodes (comma-separated names).',
      delimiter: ',',
      multiple: true,
    }),
    'batch-size': Flags.string({
      summary: 'Nodes per batch: a count (2) or a percentage (25%). Overrides rollout.batchSize.',
    }),
    'dry-run': Flags.boolean({
      summary: 'Print the plan with exact commands and deadlines; connect to nothing.',
      default: false,
    }),
    json: Flags.boolean({
      summary: 'One JSON event per line on stdout; the last line is the report.',
      default: false,
    }),
    yes: Flags.boolean({
      char: 'y',
      summary: 'Do not ask for confirmation (before starting and after the canary batch).',
      default: false,
    }),
    resume: Flags.boolean({
      summary: 'Continue the last interrupted or failed run from its journal: finished nodes are skipped.',
      default: false,
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(RestartFleet);
    try {
      const code = await restartFleet({
        configPath: flags.config,
        overrides: { nodes: flags.nodes, batchSize: flags['batch-size'] },
        dryRun: flags['dry-run'],
        json: flags.json,
        yes: flags.yes,
        resume: flags.resume,
        stdin: process.stdin,
        stdout: process.stdout,
        stderr: process.stderr,
        env: process.env,
      });
      if (code !== 0) this.exit(code);
    } catch (error) {
      this.exit(reportError(error, process.stderr));
    }
  }
}
