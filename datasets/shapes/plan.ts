/**
 * The whole dataset decided up front, before any pixel is drawn: scenes, captions and web captions. Only
 * small records are held (no images), and every random choice is made here in a fixed order from three
 * independent RNG streams (scenes, captions, noise): changing `noise` keeps the same images and captions.
 */
import { planCaptions, renderCaption, type CaptionPlan } from './captions.js';
import {
  assignNoise,
  boilerplate,
  mismatchPartner,
  namesDifferentObjects,
  relationSwapCaption,
  swapCaption,
  type NoiseKind,
} from './noise.js';
import { Rng } from './rng.js';
import { planScene, type Scene } from './scene.js';

export interface PlannedImage {
  index: number;
  key: string;
  scene: Scene;
  /** The five ground-truth captions. */
  captions: string[];
  /** The caption a web crawl would have found with the image. */
  webCaption: string;
  noise: NoiseKind | null;
}

export interface PlanOptions {
  count: number;
  noise: number;
  seed: number;
  imageSize: number;
}

/** `shapes_000000`, `shapes_000001`, ...: valid WebDataset keys (no dots). */
export function shapesKey(index: number): string {
  return `shapes_${String(index).padStart(6, '0')}`;
}

/** Number of noisy images for `count` images at fraction `noise`. */
export function noisyCount(count: number, noise: number): number {
  return Math.round(noise * count);
}

export function planDataset(options: PlanOptions): PlannedImage[] {
  const { count, noise, seed, imageSize } = options;
  const sceneRng = new Rng(seed, 0);
  const captionRng = new Rng(seed, 1);
  const noiseRng = new Rng(seed, 2);

  const scenes: Scene[] = [];
  const plans: CaptionPlan[][] = [];
  const captions: string[][] = [];
  for (let i = 0; i < count; i++) {
    const scene = planScene(sceneRng, imageSize);
    const captionPlans = planCaptions(captionRng, scene.objects);
    scenes.push(scene);
    plans.push(captionPlans);
    captions.push(captionPlans.map((p) => renderCaption(p, scene.objects)));
  }

  const noiseOf = assignNoise(noiseRng, count, noisyCount(count, noise), (i) => scenes[i]!.objects.length > 1);
  const images: PlannedImage[] = [];
  for (let i = 0; i < count; i++) {
    const scene = scenes[i]!;
    const kind = noiseOf.get(i) ?? null;
    let webCaption: string;
    switch (kind) {
      case null:
        webCaption = noiseRng.pick(captions[i]!);
        break;
      case 'mismatch': {
        const partner = mismatchPartner(noiseRng, i, scenes);
        webCaption = partner === null ? unrelatedCaption(noiseRng, scene, imageSize) : noiseRng.pick(captions[partner]!);
        break;
      }
      case 'swap':
        webCaption = swapCaption(noiseRng, scene.objects, plans[i]!);
        break;
      case 'relation':
        webCaption = relationSwapCaption(noiseRng, scene.objects, plans[i]!);
        break;
      case 'boilerplate':
        webCaption = boilerplate(noiseRng);
        break;
      case 'empty':
        webCaption = '';
        break;
    }
    images.push({ index: i, key: shapesKey(i), scene, captions: captions[i]!, webCaption, noise: kind });
  }
  return images;
}

/**
 * Fallback for datasets too small to hold an unrelated image: the caption of a scene that is drawn only
 * for this purpose and never rendered.
 */
function unrelatedCaption(rng: Rng, scene: Scene, imageSize: number): string {
  for (;;) {
    const other = planScene(rng, imageSize);
    if (namesDifferentObjects(scene.objects, other.objects)) {
      const plan = rng.pick(planCaptions(rng, other.objects));
      return renderCaption(plan, other.objects);
    }
  }
}
