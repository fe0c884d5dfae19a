/**
 * The ONNX models a recipe runs and the runtime each gets (`core/runtime-settings.ts` has the `auto` rule).
 */
import { availableParallelism } from 'node:os';

import { resolveRuntime, type ModelRuntimeSettings, type ResolvedRuntime } from '../core/runtime-settings.js';
import type { Recipe } from './recipe.js';

/** The recipe's ONNX models, by recipe field, in recipe order, with their own `runtime` settings. */
export function recipeOnnxModels(recipe: Recipe): { name: string; runtime?: ModelRuntimeSettings | undefined }[] {
  const models: { name: string; runtime?: ModelRuntimeSettings | undefined }[] = [];
  if (recipe.filter?.itc) models.push({ name: 'filter.itc', runtime: recipe.filter.itc.runtime });
  if (recipe.filter?.itm) models.push({ name: 'filter.itm', runtime: recipe.filter.itm.runtime });
  if (recipe.captioner?.type === 'onnx') models.push({ name: 'captioner', runtime: recipe.captioner.runtime });
  return models;
}

/** Every ONNX model's device, threads and workers, and the decode concurrency, on this machine (`cores` injected by tests). */
export function resolveRecipeRuntime(recipe: Recipe, cores: number = availableParallelism()): ResolvedRuntime {
  return resolveRuntime(recipe.runtime, recipeOnnxModels(recipe), cores, recipe.decode.concurrency);
}
