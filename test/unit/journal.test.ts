import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import { EVENT_SCHEMA_VERSION, type RolloutEvent } from '../../src/lib/engine/events.js';
import { createJournalWriter, journalPath, readJournal } from '../../src/lib/journal/journal.js';
import { writeAll, writeAtomic, type FileSystem } from '../../src/lib/journal/safe-write.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'graceroll-journal-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const stamp = (event: RolloutEvent) => ({
  v: EVENT_SCHEMA_VERSION,
  time: new Date().toISOString(),
  ...event,
});
const config = (file: string, only?: string[]) =>
  parseFleetYaml(
    'service: {type: systemd, unit: w.service}\nnodes: [{name: a}, {name: b}]\n',
    join(dir, file),
    {
      nodes: only,
    },
  );

/** A disk that takes `room` more bytes, then writes nothing (writeSync returns 0, as on a full device). */
const nearlyFull = (room: number): FileSystem => ({
  writeSync(fd, buffer, offset, length) {
    const n = Math.max(0, Math.min(length, room));
    room -= n;
    return n === 0 ? 0 : writeSync(fd, buffer, offset, n);
  },
});

describe('safe writes', () => {
  it('writeAll keeps writing after a short write and fails when the disk takes nothing more', () => {
    const path = join(dir, 'f');
    writeFileSync(path, '');
    const short: FileSystem = {
      writeSync: (fd, buffer, offset, length) => writeSync(fd, buffer, offset, Math.min(length, 3)),
    };
    const fd = openSync(path, 'w');
    writeAll(fd, 'hello world', short);
    closeSync(fd);
    expect(readFileSync(path, 'utf8')).toBe('hello world');
    const fd2 = openSync(path, 'w');
    expect(() => writeAll(fd2, 'hello world', nearlyFull(4))).toThrow(/ENOSPC.*wrote 4 of 11 bytes/);
    closeSync(fd2);
  });

  it('writeAtomic on a full disk leaves the old content whole and no temporary file', () => {
    const path = join(dir, 'j.json');
    writeAtomic(path, '{"old": true}\n');
    expect(() => writeAtomic(path, `{"new": "${'x'.repeat(1000)}"}\n`, nearlyFull(100))).toThrow(/ENOSPC/);
    expect(readFileSync(path, 'utf8')).toBe('{"old": true}\n');
    expect(readdirSync(dir)).toEqual(['j.json']);
  });

  it('never writes through a symlink planted beside the journal', () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious');
    const log = join(dir, 'fleet.journal.log');
    symlinkSync(victim, log);
    const fleet = config('fleet.yaml');
    expect(() =>
      createJournalWriter(join(dir, 'fleet.journal.json'), fleet, undefined, { resume: false }),
    ).toThrow(/the journal .*fleet\.journal\.log cannot be written: ELOOP/);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
  });
});

describe('journal', () => {
  it('is named after the config file, so two configs in one directory never share one', () => {
    expect(journalPath(config('web.yaml'))).toBe(join(dir, '.graceroll', 'web.journal.json'));
    expect(journalPath(config('api.yml'))).toBe(join(dir, '.graceroll', 'api.journal.json'));
  });

  it('records the config path, its digest and the selection of nodes', () => {
    const fleet = config('fleet.yaml');
    const path = journalPath(fleet);
    const writer = createJournalWriter(path, fleet, undefined, { resume: false });
    writer.handle(stamp({ kind: 'batch-start', batch: 0, canary: false, nodes: ['a'] }));
    const saved = readJournal(path)!;
    expect(saved.config).toBe(join(dir, 'fleet.yaml'));
    expect(saved.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(saved.selection).toEqual(['a', 'b']);
  });

  it('a run of --nodes a keeps the record that b is out of rotation, until a run touches b', () => {
    const full = config('fleet.yaml');
    const path = journalPath(full);
    const first = createJournalWriter(path, full, undefined, { resume: false });
    first.handle(stamp({ kind: 'batch-start', batch: 0, canary: false, nodes: ['b'] }));
    first.handle(stamp({ kind: 'step-start', node: 'b', step: 'deregister', detail: '' }));
    first.handle(
      stamp({
        kind: 'node-end',
        node: 'b',
        outcome: 'failed',
        inRotation: false,
        durationMs: 1,
        reason: 'x',
      }),
    );
    const onlyA = config('fleet.yaml', ['a']);
    const second = createJournalWriter(path, onlyA, readJournal(path), { resume: false });
    second.handle(stamp({ kind: 'batch-start', batch: 0, canary: false, nodes: ['a'] }));
    second.handle(stamp({ kind: 'node-end', node: 'a', outcome: 'done', inRotation: true, durationMs: 1 }));
    const saved = readJournal(path)!;
    expect(saved.nodes.b).toMatchObject({ state: 'failed', inRotation: false });
    expect(saved.nodes.a).toMatchObject({ state: 'done', inRotation: true });
  });

  it('a write that fails is reported, and the writer says so afterwards', () => {
    const fleet = config('fleet.yaml');
    const path = journalPath(fleet);
    const writer = createJournalWriter(path, fleet, undefined, { resume: false, fs: nearlyFull(200) });
    expect(() =>
      writer.handle(stamp({ kind: 'batch-start', batch: 0, canary: false, nodes: ['a'] })),
    ).toThrow(/the journal .* cannot be written: ENOSPC/);
    expect(writer.failure()).toMatch(/ENOSPC/);
    expect(existsSync(path)).toBe(false);
  });
});
