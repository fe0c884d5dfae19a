/**
 * Files are written under a temporary name and renamed when complete, so an interrupted generation never
 * leaves a partial file under its final name.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';

/** Suffix of files being written. */
export const TEMP_SUFFIX = '.tmp';

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = path + TEMP_SUFFIX;
  await writeFile(temp, data);
  await rename(temp, path);
}

/** A write stream on a temporary name; `commit()` closes it and moves it into place. */
export class AtomicWriteStream {
  readonly stream: WriteStream;
  private readonly temp: string;

  constructor(readonly path: string) {
    this.temp = path + TEMP_SUFFIX;
    this.stream = createWriteStream(this.temp);
  }

  /** Write, waiting for the stream to drain when its buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    if (!this.stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.stream.off('error', onError);
          resolve();
        };
        const onError = (err: Error): void => {
          this.stream.off('drain', onDrain);
          reject(err);
        };
        this.stream.once('drain', onDrain);
        this.stream.once('error', onError);
      });
    }
  }

  async commit(): Promise<void> {
    this.stream.end();
    await finished(this.stream);
    await rename(this.temp, this.path);
  }

  /** Give up: close and delete the temporary file. */
  async abort(): Promise<void> {
    this.stream.destroy();
    await unlink(this.temp).catch(() => undefined);
  }
}
