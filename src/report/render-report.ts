/**
 * The report page: one self-contained HTML document (inline CSS, inline SVG, images as `data:` URLs, and a
 * Content-Security-Policy that forbids every network request).
 */
import { cutOf, type FailureGroup, type Gallery, type GalleryInstruction, type GallerySample, type ReportData, type ScoreSweep } from './report-data.js';
import type { ResolvedPolicy } from '../filter/policy.js';
import type { Thumbnail } from './thumbnails.js';
import { histogramSvg, SERIES } from './histogram-svg.js';
import { fmtCount, fmtPercent, fmtScore, html, raw, type Html } from './html.js';

export interface RenderContext {
  data: ReportData;
  thumbnails: ReadonlyMap<string, Thumbnail>;
  /** Shown in the title: the run database's path. */
  dbPath: string;
  generatedAt: string;
}

const BOX_COLORS = ['#ff4d4f', '#40a9ff', '#ffc53d', '#73d13d', '#b37feb', '#36cfc9', '#ff85c0', '#ffa940'];

const CSS = `
:root { --fg: #1d2430; --muted: #637083; --line: #dfe3e8; --bg: #f6f7f9; --card: #fff;
  --ok: #2e9d5b; --bad: #d1495b; --warn: #c77c02; --accent: #3553c9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { background: #1d2430; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .sub { color: #b8c2d0; font-size: 13px; word-break: break-all; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line); padding: 8px 28px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; font-weight: 500; }
main { padding: 8px 28px 40px; max-width: 1600px; }
section { margin-top: 26px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
.muted { color: var(--muted); }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 130px; }
.tile .n { font-size: 22px; font-weight: 600; }
.tile.ok .n { color: var(--ok); } .tile.failed .n { color: var(--bad); } .tile.dropped .n { color: var(--warn); }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); margin: 4px 0 8px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.current td { background: #fff7d6; font-weight: 600; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
.chart { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
svg.histogram { display: block; max-width: 100%; height: auto; }
svg.histogram text { font-size: 11px; fill: var(--muted); }
svg.histogram .grid { stroke: #edf0f3; } svg.histogram .axis { stroke: #8a96a6; }
svg.histogram .threshold { stroke: #1d2430; stroke-dasharray: 4 3; stroke-width: 1.5; }
svg.histogram .threshold-label { fill: #1d2430; font-weight: 600; }
svg.histogram .axis-title { fill: var(--fg); font-size: 12px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; display: flex; flex-direction: column; }
.card.dropped { border-color: #f0c36d; } .card.failed { border-color: #f1a7b1; }
.thumb { position: relative; margin: 0; background: #e9ecf0; display: flex; justify-content: center; }
.thumb .frame { position: relative; max-width: 100%; }
.thumb img { display: block; width: 100%; height: auto; }
.thumb svg.boxes { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
svg.boxes rect { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
svg.boxes text { font-weight: 700; paint-order: stroke; stroke: #000; stroke-width: 3px; vector-effect: non-scaling-stroke; }
.noimg { padding: 30px 12px; color: var(--bad); font-size: 12px; text-align: center; }
.card .body { padding: 8px 10px 10px; }
.card .head { display: flex; gap: 6px; align-items: baseline; flex-wrap: wrap; }
.card code { font-size: 12px; word-break: break-all; }
.badge { font-size: 11px; padding: 1px 6px; border-radius: 9px; background: #eef1f5; color: var(--muted); }
.badge.ok { background: #e3f4ea; color: var(--ok); } .badge.dropped { background: #fbf0d9; color: var(--warn); } .badge.failed { background: #fbe5e8; color: var(--bad); }
.facts { font-size: 12px; color: var(--muted); margin: 2px 0 6px; }
ul.captions { list-style: none; padding: 0; margin: 0; }
ul.captions li { padding: 4px 0 4px 8px; border-left: 3px solid #c9d0d9; margin: 4px 0; font-size: 13px; }
ul.captions li.kept { border-left-color: var(--ok); } ul.captions li.rejected { border-left-color: var(--bad); color: #56606d; }
.origin { font-size: 10px; text-transform: uppercase; letter-spacing: .04em; padding: 0 5px; border-radius: 3px; background: #eef1f5; color: var(--muted); }
.origin.synthetic { background: #ece8fb; color: #5b3fc4; } .origin.annotation { background: #e4f1fb; color: #1f6fb2; }
.scores { font-size: 11px; color: var(--muted); font-variant-numeric: tabular-nums; }
.reason { font-size: 11px; color: var(--muted); }
.verdict.kept { color: var(--ok); font-weight: 700; } .verdict.rejected { color: var(--bad); font-weight: 700; }
.boxlist { font-size: 12px; margin-top: 6px; }
.boxlist span { display: inline-block; margin-right: 6px; }
.swatch { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 3px; }
details { margin-top: 6px; font-size: 13px; }
summary { cursor: pointer; color: var(--accent); }
.turn { margin: 4px 0; padding: 4px 8px; border-radius: 6px; white-space: pre-wrap; }
.turn.human { background: #eef3ff; } .turn.gpt { background: #f1f8f3; }
.turn b { font-size: 11px; text-transform: uppercase; color: var(--muted); margin-right: 4px; }
.convos { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
.convo { display: flex; gap: 10px; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
.convo .thumb { flex: 0 0 160px; align-self: flex-start; }
.convo .turns { flex: 1; min-width: 0; }
footer { color: var(--muted); font-size: 12px; padding: 20px 28px; }
`;

function tiles(data: ReportData): Html {
  const { samples } = data.stats;
  const c = data.stats.captions;
  const tile = (cls: string, n: number, label: string, sub = '') =>
    html`<div class="tile ${cls}"><div class="n">${fmtCount(n)}</div><div>${label}</div>${sub ? html`<div class="muted">${sub}</div>` : ''}</div>`;
  return html`<div class="tiles">
${tile('', samples.total, 'samples')}
${tile('ok', samples.ok, 'ok', fmtPercent(samples.ok, samples.total))}
${tile('dropped', samples.dropped, 'dropped', fmtPercent(samples.dropped, samples.total))}
${tile('failed', samples.failed, 'failed', fmtPercent(samples.failed, samples.total))}
${tile('', c.total, 'captions', `${fmtCount(c.kept)} kept · ${fmtCount(c.rejected)} rejected · ${fmtCount(c.undecided)} not filtered`)}
${Object.entries(data.stats.exported).map(([name, n]) => tile('', n, `exported to ${name}`))}
</div>`;
}

function countTable(title: string, counts: Record<string, number>, total?: number): Html | '' {
  const entries = Object.entries(counts);
  if (entries.length === 0) return '';
  return html`<div><h3>${title}</h3><table><tbody>${entries.map(
    ([k, n]) => html`<tr><td>${k}</td><td class="num">${fmtCount(n)}</td>${total ? html`<td class="num muted">${fmtPercent(n, total)}</td>` : ''}</tr>`,
  )}</tbody></table></div>`;
}

function scoreQuantiles(data: ReportData): Html | '' {
  const rows = (['itc', 'itm'] as const).flatMap((s) => {
    const q = data.stats.scores[s];
    return q ? [{ s, q }] : [];
  });
  if (rows.length === 0) return '';
  return html`<div><h3>Score quantiles</h3><table><thead><tr><th>score</th><th class="num">captions</th><th class="num">min</th><th class="num">p10</th><th class="num">p50</th><th class="num">p90</th><th class="num">max</th><th class="num">mean</th></tr></thead><tbody>${rows.map(
    ({ s, q }) =>
      html`<tr><td>${s.toUpperCase()}</td><td class="num">${fmtCount(q.count)}</td>${[q.min, q.p10, q.p50, q.p90, q.max, q.mean].map(
        (v) => html`<td class="num">${fmtScore(v)}</td>`,
      )}</tr>`,
  )}</tbody></table></div>`;
}

/** `policy both, ITC ≥ 0.3, ITM ≥ 0.5, top 2 by itm, prefer web`. */
export function describePolicy(p: ResolvedPolicy): string {
  const itc = cutOf(p, 'itc');
  const itm = cutOf(p, 'itm');
  return [
    `policy ${p.policy}`,
    itc !== null ? `ITC ≥ ${fmtCut(itc)}` : null,
    itm !== null ? `ITM ≥ ${fmtCut(itm)}` : null,
    p.topK !== null ? `top ${p.topK} by ${p.topKBy}` : null,
    p.preferWeb ? 'prefer web' : null,
  ]
    .filter(Boolean)
    .join(', ');
}

const fmtCut = (x: number) => String(Math.round(x * 10000) / 10000);

/** The decisions in force and where they came from: the recipe, or a refilter (when, which flags). */
function decisionsText(d: ReportData['decisions']): Html {
  if (!d) return html`Filter: none in the recipe, nothing refiltered.`;
  if (d.source === 'recipe') return html`Filter decisions in force: <b>${describePolicy(d.policy)}</b>, from the recipe of run ${d.runId ?? '?'}.`;
  const r = d.refilter!;
  return html`Filter decisions in force: <b>${describePolicy(d.policy)}</b>, from <code>${r.command}</code> at ${r.at} (${fmtCount(r.changed)} samples changed)${
    d.recipe ? html`; the recipe says ${describePolicy(d.recipe)}` : ''
  }.`;
}

function summarySection(data: ReportData): Html {
  const run = data.run;
  return html`<section id="summary"><h2>Run summary</h2>
${tiles(data)}
${run ? html`<p class="muted">Latest run ${run.id} (${run.status}, shard ${run.shard}), started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}; ${data.stats.runs.length} run(s) in this database.</p>` : ''}
<p id="decisions">${decisionsText(data.decisions)}</p>
<div class="tables">
${countTable('Samples by source', data.stats.sources, data.stats.samples.total)}
${countTable('Drop reasons', data.stats.dropReasons, data.stats.samples.dropped)}
${countTable('Failures', data.stats.failures, data.stats.samples.failed)}
${countTable('Captions by origin', data.stats.captions.byOrigin, data.stats.captions.total)}
${countTable('Caption issues', data.stats.captions.issues)}
${scoreQuantiles(data)}
</div></section>`;
}

function sweepTable(s: ScoreSweep): Html {
  return html`<div><h3>${s.score.toUpperCase()} alone</h3><table><thead><tr><th class="num">threshold</th><th class="num">captions kept</th><th class="num">%</th><th class="num">images with a kept caption</th><th class="num">%</th></tr></thead><tbody>${s.rows.map(
    (r) =>
      html`<tr class="${r.current ? 'current' : ''}"><td class="num">≥ ${Number(r.threshold.toFixed(4))}${r.current ? ' (in force)' : ''}</td><td class="num">${fmtCount(
        r.captionsKept,
      )}</td><td class="num">${fmtPercent(r.captionsKept, s.captions)}</td><td class="num">${fmtCount(r.imagesKept)}</td><td class="num">${fmtPercent(
        r.imagesKept,
        s.images,
      )}</td></tr>`,
  )}</tbody></table><div class="muted">of ${fmtCount(s.captions)} usable captions on ${fmtCount(s.images)} images</div></div>`;
}

function scoresSection(data: ReportData): Html {
  if (data.histograms.length === 0) {
    return html`<section id="scores"><h2>Scores</h2><p class="muted">No caption has a filter score yet (the recipe has no <code>filter</code>, or it has not run).</p></section>`;
  }
  return html`<section id="scores"><h2>Score histograms</h2>
<p class="muted">Captions by score, stacked by verdict: ${SERIES.map((s) => html`<span class="swatch" style="background:${s.color}"></span>${s.label} `)}. The dashed line is the cut in force (see the run summary for where it comes from).</p>
<div class="charts">${data.histograms.map((h) => html`<div class="chart">${histogramSvg(h)}</div>`)}</div>
<h2 id="sweep" style="margin-top:22px">Threshold sweep</h2>
<p class="muted">What one score's threshold alone would keep (other rules of the policy, such as top-K, aside): re-decide a run without inference with <code>vlcurate refilter</code>.</p>
<div class="tables">${data.sweeps.map(sweepTable)}</div></section>`;
}

function thumbFigure(sample: GallerySample, thumb: Thumbnail | undefined, withBoxes = true): Html {
  if (!thumb || !thumb.ok) {
    return html`<figure class="thumb"><div class="noimg">image unavailable${thumb && !thumb.ok ? html`: ${thumb.error}` : ''}</div></figure>`;
  }
  const w = sample.width ?? thumb.width;
  const h = sample.height ?? thumb.height;
  const font = Math.max(w, h) / 18;
  const boxes =
    withBoxes && sample.boxes.length
      ? html`<svg class="boxes" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" aria-hidden="true">${sample.boxes.map((b, i) => {
          const [x1, y1, x2, y2] = b.box;
          const color = BOX_COLORS[i % BOX_COLORS.length]!;
          // Labels sit inside the box's top edge, anchored at whichever side keeps them on the image.
          const right = x1 > w * 0.55;
          return html`<rect x="${x1}" y="${y1}" width="${Math.max(0, x2 - x1)}" height="${Math.max(0, y2 - y1)}" stroke="${color}"/><text x="${
            right ? x2 - font * 0.2 : x1 + font * 0.2
          }" y="${Math.max(y1, 0) + font}" text-anchor="${right ? 'end' : 'start'}" font-size="${Number(font.toFixed(1))}" fill="${color}">${b.label}</text>`;
        })}</svg>`
      : '';
  return html`<figure class="thumb"><div class="frame" style="width:${thumb.width}px"><img src="${raw(thumb.dataUrl)}" width="${thumb.width}" height="${thumb.height}" alt="${sample.key}">${boxes}</div></figure>`;
}

function captionItem(c: GallerySample['captions'][number]): Html {
  const verdict = c.kept === null ? 'undecided' : c.kept ? 'kept' : 'rejected';
  const scores = [c.itc !== null ? `itc ${fmtScore(c.itc)}` : null, c.itm !== null ? `itm ${fmtScore(c.itm)}` : null].filter(Boolean).join(' · ');
  return html`<li class="${verdict}"><span class="origin ${c.origin}">${c.origin}</span> ${
    c.kept === null ? '' : html`<span class="verdict ${verdict}">${c.kept ? '✓' : '✗'}</span> `
  }${c.text.trim() === '' ? html`<span class="muted">(empty)</span>` : c.text}${c.issue ? html` <span class="badge">${c.issue}</span>` : ''}${
    scores ? html`<div class="scores">${scores}${c.model ? ` · ${c.model}` : ''}</div>` : ''
  }${c.reason ? html`<div class="reason">${c.reason}</div>` : ''}</li>`;
}

function turns(instruction: GalleryInstruction): Html {
  return html`${instruction.turns.map((t) => html`<div class="turn ${t.from === 'gpt' ? 'gpt' : 'human'}"><b>${t.from}</b>${t.value}</div>`)}`;
}

function card(sample: GallerySample, thumbnails: ReadonlyMap<string, Thumbnail>): Html {
  const status = sample.status;
  const facts = [sample.width && sample.height ? `${sample.width}×${sample.height}` : null, sample.format, sample.source].filter(Boolean).join(' · ');
  const okInstructions = sample.instructions.filter((i) => i.turns.length > 0);
  return html`<article class="card ${status}" data-key="${sample.key}">
${thumbFigure(sample, thumbnails.get(sample.key))}
<div class="body"><div class="head"><code>${sample.key}</code><span class="badge ${status}">${status}</span>${
    sample.dropReason ? html`<span class="badge">${sample.dropReason}</span>` : ''
  }</div>
<div class="facts">${facts}</div>
<ul class="captions">${sample.captions.map(captionItem)}</ul>
${
  sample.boxes.length
    ? html`<div class="boxlist">${sample.boxes.map(
        (b, i) => html`<span><span class="swatch" style="background:${BOX_COLORS[i % BOX_COLORS.length]!}"></span>${b.label}</span>`,
      )}</div>`
    : ''
}
${okInstructions.map(
  (i) => html`<details><summary>${i.task}${i.variant ? ` #${i.variant}` : ''} (${i.turns.length} turns, ${i.status})</summary>${turns(i)}</details>`,
)}
</div></article>`;
}

function gallerySection(g: Gallery, thumbnails: ReadonlyMap<string, Thumbnail>): Html {
  const shown = g.samples.length;
  return html`<section id="gallery-${g.name}" class="gallery-section"><h2>${g.title} <span class="muted">(${
    shown < g.total ? `${fmtCount(shown)} of ${fmtCount(g.total)}, sampled by key hash` : fmtCount(g.total)
  })</span></h2>
${shown ? html`<div class="gallery">${g.samples.map((s) => card(s, thumbnails))}</div>` : html`<p class="muted">None.</p>`}</section>`;
}

function failuresSection(groups: FailureGroup[]): Html | '' {
  if (groups.length === 0) return '';
  return html`<section id="failures"><h2>Failures</h2><table><thead><tr><th>code</th><th>stage</th><th class="num">samples</th><th>examples</th></tr></thead><tbody>${groups.map(
    (g) =>
      html`<tr><td><code>${g.code}</code></td><td>${g.stage ?? ''}</td><td class="num">${fmtCount(g.count)}</td><td>${g.examples.map(
        (e) => html`<div><code>${e.key}</code> <span class="muted">${e.message ?? ''}</span></div>`,
      )}</td></tr>`,
  )}</tbody></table><p class="muted">All of them: <code>vlcurate inspect RUN.db samples --status failed</code>.</p></section>`;
}

function instructionsSection(data: ReportData, thumbnails: ReadonlyMap<string, Thumbnail>): Html | '' {
  const { counts, examples } = data.instructions;
  const tasks = Object.keys(counts);
  if (tasks.length === 0) return '';
  const statuses = [...new Set(tasks.flatMap((t) => Object.keys(counts[t]!)))].sort();
  return html`<section id="instructions"><h2>Synthesized instructions</h2>
<table><thead><tr><th>task</th>${statuses.map((s) => html`<th class="num">${s}</th>`)}</tr></thead><tbody>${tasks.map(
    (t) => html`<tr><td>${t}</td>${statuses.map((s) => html`<td class="num">${fmtCount(counts[t]![s] ?? 0)}</td>`)}</tr>`,
  )}</tbody></table>
<div class="convos">${examples.map(
    ({ sample, instruction }) =>
      html`<div class="convo" data-key="${sample.key}">${thumbFigure(sample, thumbnails.get(sample.key))}<div class="turns"><div class="head"><code>${sample.key}</code> <span class="badge">${
        instruction.task
      }${instruction.variant ? ` #${instruction.variant}` : ''}</span>${instruction.reason ? html` <span class="reason">${instruction.reason}</span>` : ''}</div>${turns(instruction)}</div></div>`,
  )}</div></section>`;
}

export function renderReport(ctx: RenderContext): string {
  const { data, thumbnails } = ctx;
  const sections: [string, string][] = [
    ['summary', 'Summary'],
    ['scores', 'Scores'],
    ...data.galleries.map((g): [string, string] => [`gallery-${g.name}`, g.title]),
    ...(data.instructions.examples.length || Object.keys(data.instructions.counts).length ? [['instructions', 'Instructions'] as [string, string]] : []),
    ...(data.failures.length ? [['failures', 'Failures'] as [string, string]] : []),
  ];
  const page = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vlcurate report — ${ctx.dbPath}</title>
<style>${raw(CSS)}</style></head>
<body>
<header><h1>vlcurate run report</h1><div class="sub">${ctx.dbPath} · generated ${ctx.generatedAt}</div></header>
<nav>${sections.map(([id, title]) => html`<a href="#${id}">${title}</a>`)}</nav>
<main>
${summarySection(data)}
${scoresSection(data)}
${data.galleries.map((g) => gallerySection(g, thumbnails))}
${instructionsSection(data, thumbnails)}
${failuresSection(data.failures)}
</main>
<footer>Made by vlcurate from the run database alone; every number above can be checked with <code>vlcurate inspect</code>.</footer>
</body></html>
`;
  return page.text;
}

