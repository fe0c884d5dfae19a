export { recipeSchema, runOptionsSchema, parseRecipe, loadRecipe, type Recipe, type LoadedRecipe } from './recipe.js';
export { formatIssues, formatPath } from './format-issues.js';
