import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * Field types for values that end up in remote commands or API calls. They are validated here, at the
 * edge, and quoted again where they are used: a unit name or a path carrying shell metacharacters never
 * gets as far as a transport.
 */

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export const hostname = z.string().refine((value) => HOSTNAME.test(value) || isIP(value) !== 0, {
  message: 'expected a hostname or an IP address',
});

export const nodeName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'expected a name made of letters, digits, ".", "_" or "-"');

/** systemd unit names: systemd.unit(5) allows ASCII letters, digits, ":", "-", "_", ".", "\" and "@". */
export const unitName = z
  .string()
  .regex(
    /^[A-Za-z0-9:_.@-]+$/,
    'expected a systemd unit name (letters, digits, ":", "-", "_", ".", "@"), e.g. web.service',
  );

export const absolutePath = z
  .string()
  .regex(/^\/[A-Za-z0-9._/@:+-]*$/, 'expected an absolute path made of letters, digits and "._/@:+-"');

/** A path on the controller: `~` is expanded later. */
export const localPath = z
  .string()
  .regex(/^(~|\.{1,2})?\/?[A-Za-z0-9._/@:+ -]*$/, 'expected a file path')
  .min(1);

export const SIGNALS = [
  'HUP',
  'INT',
  'QUIT',
  'ABRT',
  'KILL',
  'USR1',
  'USR2',
  'PIPE',
  'ALRM',
  'TERM',
  'CONT',
  'STOP',
  'TSTP',
  'WINCH',
  'PWR',
] as const;
export type SignalName = (typeof SIGNALS)[number];

export const signalName = z.string().transform((value, ctx): SignalName => {
  const bare = value.toUpperCase().replace(/^SIG/, '');
  if (!(SIGNALS as readonly string[]).includes(bare)) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `expected a signal name such as TERM, USR1 or KILL, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bare as SignalName;
});

export const port = z.number().int().min(1).max(65535);

/** HAProxy proxy and server names (haproxy docs, section 4: letters, digits, '-', '_', '.', ':'). */
export const lbName = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]+$/, 'expected a name made of letters, digits, "-", "_", ".", ":"');

/** `3` or `25%`. */
export const countOrPercent = z.union([
  z.number().int().min(0),
  z.string().regex(/^\d{1,3}(\.\d+)?%$/, 'expected a count like 2 or a percentage like 25%'),
]);
