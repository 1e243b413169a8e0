/**
 * Client mode's stdin, read where it costs least. Deno reads `Deno.stdin` on a thread of its blocking
 * pool, and each chunk then wakes the event loop from that thread: a line echoed through a child took
 * 139–143 µs (p50) read so, against 97–98 µs read from the event loop, on a 2-core VM. A pipe or a
 * socket, which is what MCP hosts give their servers, is therefore read from the event loop, through
 * `node:net`, as Node reads its own stdin; like Node, that makes the pipe non-blocking. Loading
 * `node:net` and `node:fs` costs client mode's start some 11 ms, once (median start to first answer
 * 113 → 124 ms on that VM): about the time saved over 500 calls.
 *
 * `Deno.stdin` stays for the rest: a terminal, a file, `/dev/null`, a stdin that is the very file stdout
 * writes to (one socket for both), whose stdout non-blocking mode would change too, and systems other than
 * Linux. So does a stdin the socket cannot be made for.
 *
 * @module
 */

import { fstatSync } from "node:fs";
import { Socket } from "node:net";
import type { ByteReader, ChunkSource } from "./json_lines.ts";

/** Where stdin is read from: see the module documentation. */
export interface StandardInput {
  source: ByteReader | ChunkSource;
  /** True when stdin is read from the event loop (a pipe or a socket), false for `Deno.stdin`. */
  fromEventLoop: boolean;
}

/** Whether stdin is a pipe or a socket of its own, apart from stdout. */
function isPipeOfItsOwn(): boolean {
  // Measured and tested on Linux; other systems keep `Deno.stdin`, the way every release read it so far.
  if (Deno.build.os !== "linux") return false;
  try {
    const input = fstatSync(0);
    if (!input.isFIFO() && !input.isSocket()) return false;
    const output = fstatSync(1);
    return input.dev !== output.dev || input.ino !== output.ino;
  } catch {
    return false;
  }
}

/** Reads fd 0 through `socket`; each chunk is a new buffer (see `ChunkSource`). */
function socketSource(socket: Socket): ChunkSource {
  return {
    pump: (onChunk) =>
      new Promise((resolve, reject) => {
        socket.on("data", (chunk: Uint8Array) => {
          try {
            onChunk(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          } catch (error) {
            socket.destroy();
            reject(error);
          }
        });
        socket.on("end", () => {
          socket.destroy();
          resolve();
        });
        socket.on("error", reject);
      }),
  };
}

/** Client mode's stdin: see the module documentation. */
export function standardInput(): StandardInput {
  if (!isPipeOfItsOwn()) return { source: Deno.stdin, fromEventLoop: false };
  let socket: Socket;
  try {
    // Half open: the end of input must not shut down a socket that the host may read our stdout from.
    socket = new Socket({ fd: 0, readable: true, writable: false, allowHalfOpen: true });
  } catch {
    return { source: Deno.stdin, fromEventLoop: false };
  }
  return { source: socketSource(socket), fromEventLoop: true };
}
