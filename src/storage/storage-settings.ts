/**
 * The recipe's `storage` section: how to reach S3-compatible storage. Credentials are never in the recipe;
 * they come the way every AWS SDK finds them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
 * the shared config files, web identity tokens in Kubernetes, instance roles).
 */
import { z } from 'zod';
import type { S3Connection } from '../backends/s3-store.js';

const MIB = 1024 * 1024;

export const storageSchema = z
  .strictObject({
    s3: z
      .strictObject({
        /** S3 API endpoint, e.g. `http://minio:9000`; default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. */
        endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL, e.g. "http://127.0.0.1:9000"' }).optional(),
        /** Default: AWS_REGION, the profile's region, else us-east-1. */
        region: z.string().min(1).optional(),
        /** Path-style URLs (`endpoint/bucket/key`); default: on when an endpoint is set (MinIO needs it). */
        forcePathStyle: z.boolean().optional(),
        /** A profile of ~/.aws/config; default: AWS_PROFILE or `default`. */
        profile: z.string().min(1).optional(),
        /** Upload part size in MiB for large objects (S3 needs at least 5). */
        partSizeMb: z.number().int().min(5, { error: 'expected an integer from 5 (S3 parts are at least 5 MiB)' }).max(5120).default(16),
      })
      .default({ partSizeMb: 16 }),
  })
  .default({ s3: { partSizeMb: 16 } });

export type StorageSettings = z.infer<typeof storageSchema>;

/** The settings a process uses when a recipe says nothing (commands that take no recipe). */
export const DEFAULT_STORAGE: StorageSettings = storageSchema.parse(undefined);

export function s3Connection(settings: StorageSettings): S3Connection {
  const s3 = settings.s3;
  const endpoint = s3.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return {
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle ?? endpoint !== undefined,
    profile: s3.profile,
    partSize: s3.partSizeMb * MIB,
  };
}

/** The `storage` section of a recipe stored in a run database (JSON), for reading its inputs back later; default when absent or unreadable. */
export function storageOfStored(recipeJson: string | null | undefined): StorageSettings {
  if (!recipeJson) return DEFAULT_STORAGE;
  try {
    const parsed = storageSchema.safeParse((JSON.parse(recipeJson) as { storage?: unknown }).storage);
    return parsed.success ? parsed.data : DEFAULT_STORAGE;
  } catch {
    return DEFAULT_STORAGE;
  }
}
