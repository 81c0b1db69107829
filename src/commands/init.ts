import { join } from 'node:path';
import { Command, Flags } from '@oclif/core';
import { INIT_LOAD_BALANCERS, INIT_SERVICES, INIT_TRANSPORTS, initConfig } from '../lib/init-config.js';
import { reportError } from '../lib/report-error.js';

export default class Init extends Command {
  static override summary = 'Write a commented starter fleet config.';

  static override description = `The file names graceroll's JSON Schema on its first line, so editors with the YAML language server complete and check every field. Choose how nodes are reached, the load balancer and the service manager; then edit hosts, names and probes, and preview with \`restart-fleet --dry-run\`. An existing file is never replaced without --force.`;

  static override examples = [
    {
      description: 'Nodes over SSH, behind HAProxy, running a systemd unit (the defaults).',
      command: '<%= config.bin %> <%= command.id %>',
    },
    {
      description: 'Services on this machine managed by your own commands, no load balancer.',
      command:
        '<%= config.bin %> <%= command.id %> -o local.yaml --transport local --lb none --service command',
    },
    {
      description: 'A load balancer driven by your own commands; print instead of writing.',
      command: '<%= config.bin %> <%= command.id %> --lb command -o -',
    },
  ];

  static override flags = {
    output: Flags.string({
      char: 'o',
      summary: 'Where to write the config (- for stdout).',
      default: 'fleet.yaml',
    }),
    force: Flags.boolean({ summary: 'Replace the file if it exists.', default: false }),
    transport: Flags.option({
      summary: 'How nodes are reached.',
      options: INIT_TRANSPORTS,
      default: 'ssh',
    })(),
    lb: Flags.option({ summary: 'The load balancer.', options: INIT_LOAD_BALANCERS, default: 'haproxy' })(),
    service: Flags.option({ summary: 'The service manager.', options: INIT_SERVICES, default: 'systemd' })(),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Init);
    try {
      const { path } = await initConfig(
        flags.output,
        { transport: flags.transport, lb: flags.lb, service: flags.service },
        join(this.config.root, 'schema', 'fleet.schema.json'),
        flags.force,
        process.stdout,
      );
      if (path !== '-')
        this.logToStderr(`wrote ${path}; edit it, then: graceroll restart-fleet -c ${path} --dry-run`);
    } catch (error) {
      this.exit(reportError(error, process.stderr));
    }
  }
}
