/**
 * Rendering: a scene becomes an SVG document, which sharp rasterises and encodes as JPEG. Output bytes
 * depend only on the scene (and the sharp/libvips build), so generation is reproducible.
 */
import sharp from 'sharp';
import { outline } from './geometry.js';
import type { Scene, SceneObject } from './scene.js';
import { COLOR_RGB } from './vocabulary.js';

/** JPEG quality of every image. */
export const JPEG_QUALITY = 90;

function num(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

function rgb([r, g, b]: readonly [number, number, number]): string {
  return `rgb(${r},${g},${b})`;
}

function objectSvg(o: SceneObject): string {
  const fill = rgb(COLOR_RGB[o.color]);
  const [x1, y1, x2, y2] = o.box;
  if (o.shape === 'circle') {
    return `<ellipse cx="${num((x1 + x2) / 2)}" cy="${num((y1 + y2) / 2)}" rx="${num((x2 - x1) / 2)}" ry="${num((y2 - y1) / 2)}" fill="${fill}"/>`;
  }
  if (o.shape === 'square') {
    return `<rect x="${x1}" y="${y1}" width="${x2 - x1}" height="${y2 - y1}" fill="${fill}"/>`;
  }
  const points = outline(o.shape, o.box)
    .map(([x, y]) => `${num(x)},${num(y)}`)
    .join(' ');
  return `<polygon points="${points}" fill="${fill}"/>`;
}

export function sceneSvg(scene: Scene): string {
  const { width, height } = scene;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="${rgb(scene.background)}"/>` +
    scene.objects.map(objectSvg).join('') +
    `</svg>`
  );
}

/** Rasterise and encode one scene as a baseline JPEG without chroma subsampling (colours stay clean). */
export async function renderScene(scene: Scene): Promise<Buffer> {
  return sharp(Buffer.from(sceneSvg(scene)), { density: 72 })
    .removeAlpha()
    .jpeg({ quality: JPEG_QUALITY, chromaSubsampling: '4:4:4', mozjpeg: false })
    .toBuffer();
}
