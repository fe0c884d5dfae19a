/**
 * A local S3-compatible server for tests and benchmarks: s3rver from npm on 127.0.0.1, port 0, storing in a
 * temporary folder. `env` is what a child process needs to reach it through the AWS SDK's own settings
 * (endpoint, region, credentials), exactly as a user points vlcurate at MinIO.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

export interface LocalS3 {
  endpoint: string;
  /** AWS_ENDPOINT_URL, AWS_REGION and the credentials s3rver accepts. */
  env: Record<string, string>;
  /** Where s3rver keeps the objects (tests may look, never write). */
  directory: string;
  close(): Promise<void>;
}

/** Start a server with the given buckets. Sets nothing in this process's env; tests pass `env` on. */
export async function startLocalS3(buckets: string[] = ['vlc-test']): Promise<LocalS3> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'vlc-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const address = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${address.port}`;
  return {
    endpoint,
    directory,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      // s3rver's fixed credentials.
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    },
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
