/**
 * The interactive progress UI: one row per stage (in / out / dropped / failed, throughput now and on
 * average, batch latency or LLM counters), a bar with the ETA when the total is known, the most recent
 * errors and log lines, the Ctrl-C notice and the final summary. Layout is ink's (flex boxes); every line
 * is truncated to the terminal width, and the number of error lines shrinks so the frame always fits the
 * terminal's height (ink redraws the whole screen, flickering, when a frame is taller than the terminal).
 */
import { useEffect, useState } from 'react';
import { Box, Text, useStdout } from 'ink';
import type { StageCounts } from '../../core/events.js';
import { formatCaptioningHeld, formatDuration, formatInstructions, formatStopped } from './format.js';
import { etaMs, fractionDone, stageRows, type ProgressView } from './ink-model.js';
import { formatCount, formatRateCell, progressBar, stageDetail } from './ink-format.js';

export interface TerminalSize {
  columns: number;
  rows: number;
}

/** The terminal's size, updated on resize (ink re-lays-out on resize, but only a state change re-renders us). */
export function useTerminalSize(): TerminalSize {
  const { stdout } = useStdout();
  const read = (): TerminalSize => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return size;
}

interface Column {
  title: string;
  width: number;
  /** `first` is the source's row (it has no `in`: it reads). */
  cell: (s: StageCounts, first: boolean) => string;
  color?: (s: StageCounts) => string | undefined;
}

const NUMBER_WIDTH = 9;
const RATE_WIDTH = 8;

/** Columns in the order they are dropped when the terminal is too narrow for all of them (last first). */
const COLUMNS: Column[] = [
  { title: 'in', width: NUMBER_WIDTH, cell: (s, first) => (first ? '' : formatCount(s.in)) },
  { title: 'out', width: NUMBER_WIDTH, cell: (s) => formatCount(s.out) },
  { title: 'failed', width: NUMBER_WIDTH, cell: (s) => formatCount(s.failed), color: (s) => (s.failed > 0 ? 'red' : undefined) },
  { title: 'dropped', width: NUMBER_WIDTH, cell: (s) => formatCount(s.dropped), color: (s) => (s.dropped > 0 ? 'yellow' : undefined) },
  { title: 'now/s', width: RATE_WIDTH, cell: (s) => formatRateCell(s.rateNow) },
  { title: 'avg/s', width: RATE_WIDTH, cell: (s) => formatRateCell(s.rateAvg) },
];

function pickColumns(columns: number, nameWidth: number, done: boolean): Column[] {
  const picked: Column[] = [];
  let used = nameWidth;
  // Once the run is over only the average rate means something.
  for (const column of COLUMNS.filter((c) => !(done && c.title === 'now/s'))) {
    if (used + column.width > columns) break;
    picked.push(column);
    used += column.width;
  }
  return picked;
}

interface TableLayout {
  nameWidth: number;
  columns: Column[];
  rows: { counts: StageCounts; detail: string; inline: boolean }[];
  /** Lines the table takes, header included. */
  height: number;
}

function layoutTable(view: ProgressView, columns: number, done: boolean): TableLayout {
  const counts = stageRows(view);
  const nameWidth = Math.min(24, Math.max(6, ...counts.map((r) => r.stage.length + 1)));
  const picked = pickColumns(columns, nameWidth, done);
  const fixed = nameWidth + picked.reduce((sum, c) => sum + c.width, 0);
  // The detail (batch latency, LLM counters) goes on its own line when it does not fit on the row.
  const detailRoom = columns - fixed - 2;
  const rows = counts.map((s) => {
    const detail = stageDetail(s, view.llm[s.stage]);
    return { counts: s, detail, inline: detail.length <= detailRoom };
  });
  return { nameWidth, columns: picked, rows, height: 1 + rows.length + rows.filter((r) => r.detail && !r.inline).length };
}

function StageTable({ layout }: { layout: TableLayout }) {
  const { nameWidth, columns: picked, rows } = layout;
  return (
    <Box flexDirection="column">
      <Box>
        <Box width={nameWidth} flexShrink={0}>
          <Text bold wrap="truncate-end">stage</Text>
        </Box>
        {picked.map((c) => (
          <Box key={c.title} width={c.width} flexShrink={0} justifyContent="flex-end">
            <Text bold>{c.title}</Text>
          </Box>
        ))}
      </Box>
      {rows.map(({ counts: s, detail, inline }, row) => {
        return (
          <Box key={s.stage} flexDirection="column">
            <Box>
              <Box width={nameWidth} flexShrink={0}>
                <Text color="cyan" wrap="truncate-end">{s.stage}</Text>
              </Box>
              {picked.map((c) => (
                <Box key={c.title} width={c.width} flexShrink={0} justifyContent="flex-end">
                  <Text color={c.color?.(s)}>{c.cell(s, row === 0)}</Text>
                </Box>
              ))}
              {detail && inline ? (
                <Box marginLeft={2} flexGrow={1}>
                  <Text dimColor wrap="truncate-end">{detail}</Text>
                </Box>
              ) : null}
            </Box>
            {detail && !inline ? (
              <Box paddingLeft={2}>
                <Text dimColor wrap="truncate-end">{detail}</Text>
              </Box>
            ) : null}
          </Box>
        );
      })}
    </Box>
  );
}

function Header({ view, columns }: { view: ProgressView; columns: number }) {
  const fraction = fractionDone(view);
  const eta = etaMs(view);
  const read = view.stages[0]?.out ?? 0;
  const facts = [
    view.runId !== null ? `run ${view.runId}` : null,
    formatDuration(view.elapsedMs),
    view.resumed ? `resumed ${formatCount(view.resumed)} done` : null,
  ].filter(Boolean);
  const counts =
    view.total !== null
      ? `${formatCount(read)} / ${formatCount(view.total)}  ${Math.floor((fraction ?? 0) * 100)}%`
      : `${formatCount(read)} read`;
  const etaText = eta !== null ? `  ETA ${formatDuration(eta)}` : '';
  const barWidth = Math.min(40, columns - counts.length - etaText.length - 3);
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Text bold>vlcurate build</Text>
        <Text dimColor>{`  ${facts.join(' · ')}`}</Text>
      </Text>
      <Text wrap="truncate-end">
        {fraction !== null && barWidth >= 5 ? <Text color="green">{`${progressBar(fraction, barWidth)} `}</Text> : null}
        <Text>{counts}</Text>
        <Text color="cyan">{etaText}</Text>
      </Text>
    </Box>
  );
}

function Errors({ view, lines }: { view: ProgressView; lines: number }) {
  if (view.errorCount === 0 || lines < 2) return null;
  const shown = view.errors.slice(-(lines - 1));
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text color="red" wrap="truncate-end">
        {`errors: ${formatCount(view.errorCount)}${view.errorCount > shown.length ? ` (latest ${shown.length})` : ''}`}
      </Text>
      {shown.map((e, i) => (
        <Text key={`${i}-${e.key}`} wrap="truncate-end">
          <Text dimColor>{`  ${e.stage} `}</Text>
          <Text>{`${e.key} `}</Text>
          <Text color="red">{`${e.code}`}</Text>
          <Text dimColor>{`: ${e.message.replace(/\s+/g, ' ')}`}</Text>
        </Text>
      ))}
    </Box>
  );
}

function Summary({ view }: { view: ProgressView }) {
  const end = view.end!;
  const { samples, failures, exported } = end.summary;
  const failureText = Object.entries(failures).map(([code, n]) => `${code} ${formatCount(n)}`).join(', ');
  const exportText = Object.entries(exported).map(([name, n]) => `${name} ${formatCount(n)}`).join(', ');
  const instructionText = formatInstructions(end.summary);
  const stoppedText = formatStopped(end.summary);
  const captioningText = formatCaptioningHeld(end.summary);
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text wrap="truncate-end">
        <Text bold color={end.aborted ? 'yellow' : samples.failed > 0 ? 'red' : 'green'}>
          {end.aborted ? 'stopped' : 'finished'}
        </Text>
        <Text>{` in ${formatDuration(end.elapsedMs)} · samples: ${formatCount(samples.total)} total, `}</Text>
        <Text color="green">{`${formatCount(samples.ok)} ok`}</Text>
        <Text>{', '}</Text>
        <Text color={samples.failed ? 'red' : undefined}>{`${formatCount(samples.failed)} failed`}</Text>
        <Text>{', '}</Text>
        <Text color={samples.dropped ? 'yellow' : undefined}>{`${formatCount(samples.dropped)} dropped`}</Text>
      </Text>
      {failureText ? <Text wrap="truncate-end">{`failures: ${failureText}`}</Text> : null}
      {exportText ? <Text wrap="truncate-end">{`exported: ${exportText}`}</Text> : null}
      {instructionText ? <Text wrap="truncate-end">{instructionText}</Text> : null}
      {stoppedText ? (
        <Text color="red" wrap="truncate-end">
          {stoppedText}
        </Text>
      ) : null}
      {captioningText ? (
        <Text color="red" wrap="truncate-end">
          {captioningText}
        </Text>
      ) : null}
      {(end.summary.exportProblems ?? []).map((problem) => (
        <Text key={problem.export} color="red" wrap="truncate-end">
          {problem.message}
        </Text>
      ))}
      {end.aborted ? (
        <Text color="yellow" wrap="truncate-end">
          interrupted: run the same command again to resume
        </Text>
      ) : null}
    </Box>
  );
}

export interface ProgressAppProps {
  view: ProgressView;
  /** Terminal size; read from ink's stdout (and its resize events) when not given. */
  size?: TerminalSize;
}

export function ProgressApp({ view, size }: ProgressAppProps) {
  const measured = useTerminalSize();
  const { columns, rows } = size ?? measured;
  const done = view.end !== null;
  const table = layoutTable(view, columns, done);
  // Lines other than errors: header, table, logs, notices, summary (at most 5 with its margin, one more per
  // stopped or held-back LLM stage and per export problem).
  const summary = view.end?.summary;
  const summaryLines = done ? 5 + (summary?.synthesis?.stopped ? 1 : 0) + (summary?.captioning ? 1 : 0) + (summary?.exportProblems?.length ?? 0) : 0;
  const used = 2 + table.height + (view.logs.length ? 1 + view.logs.length : 0) + (view.aborting && !done ? 2 : 0) + summaryLines;
  const errorLines = Math.max(0, Math.min(view.errors.length + 1, rows - used - 2));
  return (
    <Box flexDirection="column" width={columns}>
      <Header view={view} columns={columns} />
      <StageTable layout={table} />
      <Errors view={view} lines={errorLines} />
      {view.logs.length ? (
        <Box flexDirection="column" marginTop={1}>
          {view.logs.map((l, i) => (
            <Text key={i} color={l.level === 'warn' ? 'yellow' : undefined} wrap="truncate-end">
              {`${l.level === 'warn' ? 'warning: ' : ''}${l.message.replace(/\s+/g, ' ')}`}
            </Text>
          ))}
        </Box>
      ) : null}
      {view.aborting && !done ? (
        <Box marginTop={1}>
          <Text color="yellow" wrap="truncate-end">
            {`${view.aborting} (Ctrl-C again quits at once; the run stays resumable)`}
          </Text>
        </Box>
      ) : null}
      {done ? <Summary view={view} /> : null}
    </Box>
  );
}
