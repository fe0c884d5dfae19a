/**
 * Drive a command in a real pseudo-terminal: a detached tmux session on a private socket, its screen read
 * with `capture-pane`. The command's exit code is printed as `EXIT=<code>` and the pane stays open so the
 * last screen can be read.
 */
import { execFileSync, spawnSync } from 'node:child_process';

export const hasTmux = spawnSync('tmux', ['-V']).status === 0;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export class TmuxSession {
  private readonly socket = `vlc-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  constructor(argv: readonly string[], options: { cwd?: string; columns?: number; rows?: number; env?: Record<string, string | undefined> } = {}) {
    const env = Object.entries(options.env ?? {})
      .map(([k, v]) => (v === undefined ? `-u ${k}` : `${k}=${quote(v)}`))
      .join(' ');
    const command = `${options.cwd ? `cd ${quote(options.cwd)} && ` : ''}env ${env} ${argv.map(quote).join(' ')}; echo "EXIT=$?"; sleep 600`;
    this.tmux('new-session', '-d', '-s', 'main', '-x', String(options.columns ?? 120), '-y', String(options.rows ?? 40), command);
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, '-f', '/dev/null', ...args], { encoding: 'utf8' });
  }

  /** The visible screen, one string, lines right-trimmed. */
  screen(): string {
    return this.tmux('capture-pane', '-p', '-t', 'main')
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n');
  }

  sendKeys(...keys: string[]): void {
    this.tmux('send-keys', '-t', 'main', ...keys);
  }

  resize(columns: number, rows: number): void {
    this.tmux('resize-window', '-t', 'main', '-x', String(columns), '-y', String(rows));
  }

  /** Poll the screen until `test` passes; throws with the last screen after `timeoutMs`. */
  async waitFor(test: (screen: string) => boolean, timeoutMs = 60_000, everyMs = 50): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    while (Date.now() < deadline) {
      screen = this.screen();
      if (test(screen)) return screen;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    throw new Error(`timed out waiting for the terminal; last screen:\n${screen}`);
  }

  /** Wait for the command to end; its exit code and the screen then. */
  async exit(timeoutMs = 120_000): Promise<{ code: number; screen: string }> {
    const screen = await this.waitFor((s) => /^EXIT=\d+$/m.test(s), timeoutMs, 100);
    return { code: Number(/^EXIT=(\d+)$/m.exec(screen)![1]), screen };
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // Already gone.
    }
  }
}
