import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Injected by tests to simulate a full disk or a failing device; the real one is node:fs. */
export interface FileSystem {
  writeSync(fd: number, buffer: Buffer, offset: number, length: number): number;
}

const realFs: FileSystem = {
  writeSync: (fd, buffer, offset, length) => writeSync(fd, buffer, offset, length),
};

/**
 * Writes every byte or throws: writeSync may write less than asked (a nearly full disk), and a caller that
 * ignores the count leaves a truncated file behind while believing it was written.
 */
export function writeAll(fd: number, text: string, fs: FileSystem = realFs): void {
  const buffer = Buffer.from(text);
  let offset = 0;
  while (offset < buffer.length) {
    const written = fs.writeSync(fd, buffer, offset, buffer.length - offset);
    if (written <= 0)
      throw Object.assign(
        new Error(`ENOSPC: no space left on device (wrote ${offset} of ${buffer.length} bytes)`),
        {
          code: 'ENOSPC',
        },
      );
    offset += written;
  }
}

/** Opens for appending without following a symlink planted at `path` (O_NOFOLLOW). */
export function openAppend(path: string): number {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return openSync(
    path,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
    0o600,
  );
}

/**
 * Writes a file so that a reader (or a crash) sees the old or the new content, never half of either. The
 * temporary file has an unguessable name and is created exclusively (O_EXCL, O_NOFOLLOW): nothing planted
 * beside the journal (a symlink to /etc/passwd) is written through. Every byte is checked and synced
 * before the rename; on any failure the temporary file is removed and the old content stays.
 */
export function writeAtomic(path: string, text: string, fs: FileSystem = realFs): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    try {
      writeAll(fd, text, fs);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw error;
  }
}
