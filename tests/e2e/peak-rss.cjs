// Preloaded into CLI processes by tests/e2e/malformed-corpus.test.ts (NODE_OPTIONS=--require): at exit,
// the process's peak resident set size (getrusage ru_maxrss, KiB; threads included) goes to the file
// VLCURATE_PEAK_RSS_FILE names.
const fs = require('node:fs');

const file = process.env.VLCURATE_PEAK_RSS_FILE;
if (file) {
  process.on('exit', () => {
    try {
      fs.writeFileSync(file, String(process.resourceUsage().maxRSS));
    } catch {
      // The test falls back to what it polled.
    }
  });
}
