// Spatial relations in one demo run, judged against the shapes ground truth by the demo's relation judge
// (datasets/shapes/relation-judge.ts): the captioner's relation accuracy over all the captions it wrote
// (kept or not), the web captions', and how well the ITM score separates the web captions whose only
// error is a relation (the `relation` noise kind) from clean web captions that state a relation (ROC-AUC).
// Run after `npx tsc -p tsconfig.build.json` and a `vlcurate demo` (or a build on the demo's data):
//
//   node tools/measure_relations.mjs demo-out/run.db demo-out/data/ground_truth.jsonl
import Database from 'better-sqlite3';

import { readGroundTruth, relationsAreCorrect } from '../dist/datasets/shapes/index.js';

const [dbPath, truthPath] = process.argv.slice(2);
if (!dbPath || !truthPath) {
  console.error('usage: node tools/measure_relations.mjs RUN_DB GROUND_TRUTH_JSONL');
  process.exit(2);
}
const truth = readGroundTruth(truthPath);
const db = new Database(dbPath, { readonly: true });
const rows = db.prepare('SELECT sample_key AS key, origin, text, itm, kept FROM captions').all();
db.close();

/** ROC-AUC by pairwise comparison (ties count half). */
function auc(positives, negatives) {
  let wins = 0;
  for (const p of positives) for (const n of negatives) wins += p > n ? 1 : p === n ? 0.5 : 0;
  return positives.length && negatives.length ? wins / (positives.length * negatives.length) : null;
}

function relationShare(captions) {
  const judged = captions.map((r) => relationsAreCorrect(r.text, truth.get(r.key))).filter((v) => v !== null);
  const right = judged.filter(Boolean).length;
  return { captions: captions.length, stating_a_relation: judged.length, correct: right, share: judged.length ? right / judged.length : null };
}

const known = rows.filter((r) => truth.has(r.key));
const synthetic = known.filter((r) => r.origin === 'synthetic');
const web = known.filter((r) => r.origin === 'web');
const cleanWithRelation = web.filter((r) => truth.get(r.key).noise === null && relationsAreCorrect(r.text, truth.get(r.key)) !== null);
const relationNoise = web.filter((r) => truth.get(r.key).noise === 'relation');
const scored = (list) => list.filter((r) => r.itm !== null).map((r) => r.itm);
console.log(
  JSON.stringify(
    {
      captioner_all: relationShare(synthetic),
      captioner_kept: relationShare(synthetic.filter((r) => r.kept === 1)),
      web_all: relationShare(web),
      itm_relation_swap_auc: auc(scored(cleanWithRelation), scored(relationNoise)),
      itm_relation_swap_pairs: [scored(cleanWithRelation).length, scored(relationNoise).length],
      relation_noise_rejected_at_itm_0_5: relationNoise.length ? scored(relationNoise).filter((p) => p < 0.5).length / relationNoise.length : null,
    },
    null,
    2,
  ),
);
