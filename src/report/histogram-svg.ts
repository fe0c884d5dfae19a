/** Score histograms as inline SVG: bars stacked kept / dropped / undecided, the run's cut as a dashed line. */
import type { ScoreHistogram } from './report-data.js';
import { fmtCount, html, raw, type Html } from './html.js';

const WIDTH = 560;
const HEIGHT = 230;
const M = { left: 52, right: 12, top: 14, bottom: 34 };

export const SERIES = [
  { field: 'kept', label: 'kept', color: '#2e9d5b' },
  { field: 'dropped', label: 'dropped', color: '#d1495b' },
  { field: 'undecided', label: 'not filtered', color: '#9aa5b1' },
] as const;

const fix = (x: number) => Number(x.toFixed(2));

/** A "nice" tick step near `span / count` (1, 2 or 5 times a power of ten). */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit < 1.5 ? 1 : unit < 3.5 ? 2 : unit < 7.5 ? 5 : 10) * power;
}

export function histogramSvg(h: ScoreHistogram): Html {
  const plotW = WIDTH - M.left - M.right;
  const plotH = HEIGHT - M.top - M.bottom;
  const totals = h.bins.map((b) => b.kept + b.dropped + b.undecided);
  const max = Math.max(1, ...totals);
  const yStep = niceStep(max, 4);
  const yMax = Math.ceil(max / yStep) * yStep;
  const x = (v: number) => M.left + ((v - h.lo) / (h.hi - h.lo)) * plotW;
  const y = (n: number) => M.top + plotH - (n / yMax) * plotH;
  const barW = plotW / h.bins.length;
  const present = SERIES.filter((s) => h.bins.some((b) => b[s.field] > 0));

  const bars: Html[] = [];
  h.bins.forEach((bin, i) => {
    let base = 0;
    for (const s of present) {
      const n = bin[s.field];
      if (n === 0) continue;
      const top = y(base + n);
      const bottom = y(base);
      bars.push(
        html`<rect class="bar ${s.field}" x="${fix(M.left + i * barW + 0.5)}" y="${fix(top)}" width="${fix(Math.max(0.5, barW - 1))}" height="${fix(
          Math.max(0.5, bottom - top),
        )}" fill="${s.color}"><title>${h.score} ${bin.lo.toFixed(3)}–${(bin.lo + h.width).toFixed(3)}: ${fmtCount(n)} ${s.label}</title></rect>`,
      );
      base += n;
    }
  });

  const yTicks: Html[] = [];
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    yTicks.push(
      html`<line x1="${M.left}" x2="${WIDTH - M.right}" y1="${fix(y(v))}" y2="${fix(y(v))}" class="grid"/><text x="${M.left - 6}" y="${fix(
        y(v) + 4,
      )}" text-anchor="end">${v >= 10_000 ? `${Math.round(v / 1000)}k` : fmtCount(v)}</text>`,
    );
  }
  const xStep = niceStep(h.hi - h.lo, 5);
  const xTicks: Html[] = [];
  for (let v = Math.ceil(h.lo / xStep - 1e-9) * xStep; v <= h.hi + 1e-9; v += xStep) {
    xTicks.push(
      html`<line x1="${fix(x(v))}" x2="${fix(x(v))}" y1="${M.top + plotH}" y2="${M.top + plotH + 4}" class="axis"/><text x="${fix(x(v))}" y="${
        M.top + plotH + 17
      }" text-anchor="middle">${Number(v.toFixed(3))}</text>`,
    );
  }
  const cut =
    h.threshold !== null
      ? html`<line class="threshold" x1="${fix(x(h.threshold))}" x2="${fix(x(h.threshold))}" y1="${M.top}" y2="${M.top + plotH}"/><text class="threshold-label" x="${fix(
          x(h.threshold) + 4,
        )}" y="${M.top + 10}">cut ${h.threshold}</text>`
      : '';
  const legend = present.map(
    (s, i) =>
      html`<rect x="${WIDTH - M.right - 100}" y="${M.top + i * 15}" width="10" height="10" fill="${s.color}"/><text x="${WIDTH - M.right - 86}" y="${
        M.top + 9 + i * 15
      }">${s.label}</text>`,
  );
  return html`<svg class="histogram" data-score="${h.score}" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${h.score.toUpperCase()} histogram of ${fmtCount(
    h.count,
  )} captions">
${yTicks}${raw(bars.map(String).join(''))}<line x1="${M.left}" x2="${WIDTH - M.right}" y1="${M.top + plotH}" y2="${M.top + plotH}" class="axis"/>${xTicks}${cut}${legend}
<text x="${M.left + plotW / 2}" y="${HEIGHT - 3}" text-anchor="middle" class="axis-title">${h.score.toUpperCase()} score (${fmtCount(h.count)} captions)</text>
</svg>`;
}
