/**
 * First Ctrl-C (or SIGTERM): abort gracefully, finishing and committing samples in flight.
 * Second: quit at once (the run database is still consistent; the run stays resumable). It re-raises the
 * signal with its default action instead of calling `process.exit`: exiting runs native teardown while
 * inference threads are busy, which onnxruntime answers with an abort (exit 134); the kernel's kill gives
 * the conventional 130 (or 143) and leaves the database as a crash would, which WAL handles.
 */
export function abortOnSignals(controller: AbortController): () => void {
  let count = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      controller.abort();
      return;
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.kill(process.pid, signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
