/**
 * Input names as the readers pass them around: an absolute local path, or a remote location written the
 * way users write it (`s3://bucket/key`, `https://host/path`). One string either way, so a reader keeps
 * one code path; `openLocation(parseLocation(name))` reaches the bytes. Recipe values are checked here
 * once (`inputPathSchema`), so `gs://b/x` or `pipe:cat x` fails the recipe naming its field.
 */
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { isRemote, parseLocation } from './location.js';

/** A recipe value naming something to read: a local path, `s3://BUCKET/KEY` or an `http(s)://` URL. */
export const inputPathSchema = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    const problem = inputPathProblem(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  });

/** A recipe value that must be a local path; `remoteHint` says what to do instead for `s3://` or `https://`. */
export function localPathSchema(remoteHint: string) {
  return z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const problem = inputPathProblem(value);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      else if (isRemote(value)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a local path; ${remoteHint}` });
    });
}

/** What is wrong with `value` as an input path, or null (the field name is added by whoever reports it). */
export function inputPathProblem(value: string): string | null {
  try {
    parseLocation(value, FIELD);
    return null;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message.startsWith(`${FIELD}: `) ? err.message.slice(FIELD.length + 2) : err.message;
  }
}
const FIELD = '\u0000';

/**
 * `text` (a recipe value at `field`) as an input name: a remote location as written (normalised), or a
 * local path made absolute against `baseDir`. Throws a ConfigError naming the field for schemes vlcurate
 * cannot read.
 */
export function resolveInput(text: string, baseDir: string, field = 'path'): string {
  const location = parseLocation(text, field, baseDir);
  if (location.kind === 'local') return location.path;
  if (location.kind === 's3') return `s3://${location.bucket}/${location.key}`;
  return location.url;
}

/** The folder an input is in (for a remote input: the prefix up to its last '/', without it). */
export function inputDir(name: string): string {
  if (!isRemote(name)) return path.dirname(name);
  const { base, rest } = splitRemote(name);
  const slash = rest.lastIndexOf('/');
  return slash < 0 ? base.replace(/\/$/, '') : `${base}${rest.slice(0, slash)}`;
}

/**
 * `ref` (a relative name with '/' separators, as a record gives it) resolved against the folder `dir`.
 * `..` is applied to the name (`s3://b/x/../y` is `s3://b/y`); it never climbs above a bucket or a host.
 */
export function resolveAgainst(dir: string, ref: string): string {
  if (!isRemote(dir)) return path.resolve(dir, ref);
  const { base, rest } = splitRemote(dir);
  const joined = path.posix.normalize(`/${rest}/${ref}`).replace(/^\/+/, '');
  return `${base}${joined}`;
}

/** Whether the input `name` lies in the folder `dir` (both local, or both remote on the same bucket or host). */
export function isInsideInput(name: string, dir: string): boolean {
  if (isRemote(name) !== isRemote(dir)) return false;
  if (!isRemote(name)) {
    const relative = path.relative(dir, name);
    return relative === '' || (!relative.startsWith(`..${path.sep}`) && relative !== '..' && !path.isAbsolute(relative));
  }
  const folder = dir.endsWith('/') ? dir : `${dir}/`;
  return name.startsWith(folder) || name === dir;
}

/** `s3://bucket/` or `https://host/` and the rest of the name after it. */
function splitRemote(name: string): { base: string; rest: string } {
  const match = /^([a-z0-9]+:\/\/[^/?#]*\/?)(.*)$/i.exec(name)!;
  const base = match[1]!.endsWith('/') ? match[1]! : `${match[1]}/`;
  return { base, rest: match[2] ?? '' };
}
