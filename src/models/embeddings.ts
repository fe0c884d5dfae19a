/**
 * L2-normalised embeddings and the cosine scores between them.
 */

/**
 * Embeddings of a batch, each vector L2-normalised: dims `[B, D]`, or `[B, Q, D]` for Q-Former style
 * image embeddings (Q query vectors per image).
 */
export interface Embeddings {
  data: Float32Array;
  dims: number[];
}

/** Batch size, vectors per item (1 or Q) and vector length of some embeddings. */
export function embeddingShape(e: Embeddings): { count: number; vectors: number; dim: number } {
  const [count, second, third] = e.dims;
  if (count === undefined || second === undefined) throw new RangeError(`Expected embeddings of rank 2 or 3, got dims [${e.dims.join(', ')}]`);
  if (third === undefined) return { count, vectors: 1, dim: second };
  if (e.dims.length > 3) throw new RangeError(`Expected embeddings of rank 2 or 3, got dims [${e.dims.join(', ')}]`);
  return { count, vectors: second, dim: third };
}

/** Scale every `dim`-long row of `data` to unit length, in place (an all-zero row stays zero). */
export function l2NormalizeRows(data: Float32Array, dim: number): Float32Array {
  for (let start = 0; start < data.length; start += dim) {
    let sum = 0;
    for (let i = start; i < start + dim; i++) sum += data[i]! * data[i]!;
    const norm = Math.sqrt(sum);
    if (norm === 0) continue;
    for (let i = start; i < start + dim; i++) data[i] = data[i]! / norm;
  }
  return data;
}

/**
 * Cosine between image `i` and text `j` (both normalised). With several vectors per image (Q-Former),
 * the highest cosine over the image's vectors, as BLIP-2 scores image-text contrastive similarity.
 */
export function cosineAt(images: Embeddings, i: number, texts: Embeddings, j: number): number {
  const img = embeddingShape(images);
  const txt = embeddingShape(texts);
  if (img.dim !== txt.dim) {
    throw new RangeError(`Image embeddings have ${img.dim} dimensions but text embeddings have ${txt.dim}`);
  }
  if (txt.vectors !== 1) throw new RangeError(`Expected one vector per text, got ${txt.vectors}`);
  if (i < 0 || i >= img.count || j < 0 || j >= txt.count) {
    throw new RangeError(`Index out of range: image ${i} of ${img.count}, text ${j} of ${txt.count}`);
  }
  const d = img.dim;
  const t0 = j * d;
  let best = -Infinity;
  for (let q = 0; q < img.vectors; q++) {
    const i0 = (i * img.vectors + q) * d;
    let dot = 0;
    for (let k = 0; k < d; k++) dot += images.data[i0 + k]! * texts.data[t0 + k]!;
    if (dot > best) best = dot;
  }
  return best;
}

/** Cosines of every image against every text: row-major `[images, texts]`. */
export function cosineMatrix(images: Embeddings, texts: Embeddings): Float32Array {
  const ni = embeddingShape(images).count;
  const nt = embeddingShape(texts).count;
  const out = new Float32Array(ni * nt);
  for (let i = 0; i < ni; i++) for (let j = 0; j < nt; j++) out[i * nt + j] = cosineAt(images, i, texts, j);
  return out;
}
