/**
 * First Ctrl-C (or SIGTERM): abort gracefully, finishing and committing samples in flight.
 * Second Ctrl-C: quit at once (the run database is still consistent; the run stays resumable).
 */
export function abortOnSignals(controller: AbortController): () => void {
  let count = 0;
  const onSignal = () => {
    count++;
    if (count === 1) controller.abort();
    else process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
