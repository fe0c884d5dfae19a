import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';

/**
 * Temporary files that say who writes them: `PATH.PID.RANDOM.tmp`. Two processes writing the same file
 * never share a temporary name, and recovery can tell a file a live process is still writing (leave it)
 * from the leftover of a dead one (remove it).
 */

/** A fresh temporary name for writing `path` from this process. */
export function uniqueTmpPath(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

const TMP_SUFFIX = /\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/** The file a temporary name is for and the pid writing it, or null when `name` is no such name. */
export function parseTmpName(name: string): { target: string; pid: number } | null {
  const match = TMP_SUFFIX.exec(name);
  return match ? { target: name.slice(0, match.index), pid: Number(match[1]) } : null;
}

/** Temporary files this process is writing now (a dead process that had our pid left the others). */
const writing = new Set<string>();

/** Note that this process writes `tmpPath` (a `uniqueTmpPath`); call the returned function when done. */
export function markWriting(tmpPath: string): () => void {
  writing.add(tmpPath);
  return () => writing.delete(tmpPath);
}

/**
 * Whether a live process may still be writing the temporary file at `tmpPath`: ours when this process
 * marked it, another's while a process with its pid runs on this host. False for any other name.
 */
export function isBeingWritten(tmpPath: string): boolean {
  const parsed = parseTmpName(basename(tmpPath));
  if (!parsed) return false;
  // Our own pid on a file we are not writing: a dead process had it before (a container restarts at pid 1).
  return parsed.pid === process.pid ? writing.has(tmpPath) : isLiveProcess(parsed.pid);
}

/** Whether a process with this pid runs on this host (signal 0 checks without sending anything). */
export function isLiveProcess(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
