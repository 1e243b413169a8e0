/**
 * Copies stdin to stdout through `standardInput()`, byte for byte, after a first line on stderr that
 * says where stdin was read from ("event loop" or "file"). For `tests/standard_input_test.ts`.
 *
 * @module
 */

import { standardInput } from "../../src/standard_input.ts";

const { source, fromEventLoop } = standardInput();
Deno.stderr.writeSync(new TextEncoder().encode(fromEventLoop ? "event loop\n" : "file\n"));
const copy = (chunk: Uint8Array) => {
  for (let written = 0; written < chunk.length;) written += Deno.stdout.writeSync(chunk.subarray(written));
};
if ("pump" in source) {
  await source.pump(copy);
} else {
  const buffer = new Uint8Array(64 * 1024);
  for (let count = await source.read(buffer); count !== null; count = await source.read(buffer)) {
    copy(buffer.subarray(0, count));
  }
}
