/**
 * Errors of the machine rather than of vlcurate: a path that cannot be created or written (a file where a
 * folder should be, no permission, a full or read-only disk), a file that is not a SQLite database. They
 * get one line naming the path and what is wrong, and exit 2, not an "internal error" with a stack.
 */
const FILESYSTEM: Readonly<Record<string, string>> = {
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'something is already there and is not a folder',
  EISDIR: 'it is a folder, expected a file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'the name is too long',
  ENOENT: 'no such file or folder',
};

/** The one-line message for an environment error, or null when `err` is something else. */
export function describeEnvironmentError(err: unknown): string | null {
  if (!(err instanceof Error)) return null;
  const { code, path, syscall } = err as NodeJS.ErrnoException & { code?: string };
  if (code && FILESYSTEM[code] && path) return `cannot ${verb(syscall)} "${path}": ${FILESYSTEM[code]}`;
  if (code === 'SQLITE_NOTADB') return `${err.message}: the run database path points at a file that is not a SQLite database`;
  if (code === 'SQLITE_CANTOPEN') return `cannot open the run database: ${err.message}`;
  if (code === 'SQLITE_FULL') return `the run database's disk is full: ${err.message}`;
  if (code === 'SQLITE_READONLY') return `the run database cannot be written: ${err.message}`;
  return null;
}

function verb(syscall: string | undefined): string {
  switch (syscall) {
    case 'mkdir':
      return 'create the folder';
    case 'open':
      return 'open';
    case 'write':
      return 'write';
    case 'rename':
      return 'move into place';
    case 'scandir':
      return 'list';
    default:
      return syscall ?? 'use';
  }
}
