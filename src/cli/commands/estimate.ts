/**
 * `vlcurate estimate RECIPE`: what synthesis will cost before anything is spent (`run/estimate-synthesis.ts`
 * counts and prices); this file parses the arguments and prints the table or the JSON.
 */
import type { Command } from 'commander';
import { loadRecipe } from '../../config/recipe.js';
import { ConfigError } from '../../core/errors.js';
import { estimateSynthesis, synthSection } from '../../run/estimate-synthesis.js';
import { renderTable } from '../table.js';

function parseSample(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--sample: expected a whole number from 1 up, got "${value}"`);
  return n;
}

export function registerEstimate(program: Command): void {
  program
    .command('estimate')
    .description('synthesis requests, tokens and cost for a recipe, before spending anything')
    .argument('<recipe>', 'recipe file (YAML or JSON) with a synth section')
    .option('--sample <n>', 'samples read to measure prompt sizes', '200')
    .option('--json', 'machine-readable output')
    .action(async (recipePath: string, opts: { sample: string; json?: boolean }) => {
      const loaded = loadRecipe(recipePath);
      const synth = synthSection(loaded, `recipe "${recipePath}"`);
      const estimate = await estimateSynthesis(loaded, synth, { sample: parseSample(opts.sample) });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(estimate)}\n`);
        return;
      }
      const lines = [
        `synthesis estimate: ${estimate.samples} samples${estimate.model ? `, model ${estimate.model}` : ''} (prompt sizes measured on ${estimate.sampled})`,
      ];
      const rows = Object.entries(estimate.tasks).map(([task, t]) => ({
        task,
        requests: t.requests,
        answered: t.answered,
        prompt_tokens: t.promptTokens,
        completion_tokens: t.completionTokens,
        cost_usd: t.costUsd,
        remaining_usd: t.remainingCostUsd,
      }));
      if (rows.length > 0) {
        rows.push({
          task: 'total',
          requests: estimate.requests,
          answered: estimate.answered,
          prompt_tokens: estimate.promptTokens,
          completion_tokens: estimate.completionTokens,
          cost_usd: estimate.costUsd,
          remaining_usd: estimate.remainingCostUsd,
        });
        lines.push(renderTable(rows));
        lines.push(`upper bound (every request asked ${synth.maxAttempts}x at maxTokens): $${estimate.upperBoundCostUsd.toFixed(4)}; retries after errors are not included`);
        if (estimate.remainingCostUsd < estimate.costUsd) {
          lines.push(
            `the run database already holds ${estimate.answered} answers ($${estimate.spentUsd.toFixed(4)} spent); a resumed run pays about $${estimate.remainingCostUsd.toFixed(4)} more (at most $${estimate.remainingUpperBoundCostUsd.toFixed(4)})`,
          );
        }
      } else {
        lines.push('no LLM tasks: nothing to pay for');
      }
      if (estimate.templateTasks.length > 0) lines.push(`without requests: ${estimate.templateTasks.join(', ')}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
