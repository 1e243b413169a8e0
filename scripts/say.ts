/**
 * The scripts' one way to print a line of their report: to stdout, whole (`Deno.stdout.writeSync` may
 * write part of a buffer).
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes `text` and a newline to stdout. */
export function say(text = ""): void {
  const bytes = encoder.encode(text + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}
