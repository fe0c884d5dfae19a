/**
 * Control characters in text that comes from inputs. Captions lose them (`sources/caption-text.ts`); every
 * other text an input can put into a message (a JSONL line echoed in a parse error, a file name, a JSON
 * field) is escaped before it reaches a terminal or the run database, so `\x1b]2;PWNED` shows as text
 * instead of retitling the terminal, and a bidi override cannot make a message read backwards.
 */

/** C0 controls except tab, newline and carriage return; DEL and C1; the bidi embedding/override/isolate controls. */
export const CONTROL_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;
/** The same, with carriage return; newline and tab too when a message must stay on one line. */
const TERMINAL_UNSAFE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;
const TERMINAL_UNSAFE_ONE_LINE = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;

const escapeOne = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * `text` with every control character written as `\uXXXX` (a JSON escape, so JSON text stays valid
 * JSON). Tab and newline are kept unless `oneLine`; carriage return never is (it overwrites a line).
 */
export function escapeControlChars(text: string, options: { oneLine?: boolean } = {}): string {
  const pattern = options.oneLine ? TERMINAL_UNSAFE_ONE_LINE : TERMINAL_UNSAFE;
  pattern.lastIndex = 0;
  return pattern.test(text) ? text.replace(pattern, escapeOne) : text;
}
