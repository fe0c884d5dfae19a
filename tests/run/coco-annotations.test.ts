/**
 * A COCO image with one bad annotation (an unknown category) is built, through the CLI, as an ok sample
 * with its captions and good boxes; the left-out annotation and why are in `inspect show`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../e2e/helpers.js';
import { cleanup, makeImage, tempDir } from '../export/fixtures.js';

afterEach(cleanup);

describe('COCO annotations through a build', () => {
  it('an unknown category drops that annotation only, and inspect show says so', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'images'));
    writeFileSync(join(dir, 'images', 'a.png'), await makeImage(1, 'png', 40));
    const images = [{ id: 1, file_name: 'a.png', width: 44, height: 40 }];
    writeFileSync(join(dir, 'captions.json'), JSON.stringify({ images, annotations: [{ id: 10, image_id: 1, caption: 'a plain square' }] }));
    writeFileSync(
      join(dir, 'instances.json'),
      JSON.stringify({
        images,
        categories: [{ id: 1, name: 'square' }],
        annotations: [
          { id: 20, image_id: 1, category_id: 1, bbox: [2, 2, 10, 10] },
          { id: 21, image_id: 1, category_id: 99, bbox: [5, 5, 10, 10] },
        ],
      }),
    );
    writeFileSync(
      join(dir, 'recipe.yaml'),
      ['run: { db: run.db }', 'sources:', '  - { type: coco, captions: captions.json, instances: instances.json, images: images }', 'export:', '  - { type: webdataset, out: wds }', ''].join('\n'),
    );
    const build = await runCli(['build', 'recipe.yaml', '--progress', 'plain'], { cwd: dir });
    expect(build.code, build.stderr + build.stdout).toBe(0);

    const shown = await runCli(['inspect', join(dir, 'run.db'), 'show', 'a', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const detail = JSON.parse(shown.stdout) as {
      sample: { status: string; meta: { droppedAnnotations?: { code: string; message: string }[] } };
      captions: { text: string }[];
      boxes: { label: string }[];
      exports: unknown[];
    };
    expect(detail.sample.status).toBe('ok');
    expect(detail.captions.map((c) => c.text)).toEqual(['a plain square']);
    expect(detail.boxes.map((b) => b.label)).toEqual(['square']);
    expect(detail.exports).toHaveLength(1);
    expect(detail.sample.meta.droppedAnnotations).toEqual([
      { code: 'annotation_unknown_category', message: expect.stringMatching(/^annotations\[1\] \(id 21\) of instances file ".*instances\.json": category_id 99 is not in "categories"$/) },
    ]);
  });
});
