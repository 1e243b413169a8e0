import assert from "node:assert/strict";
import {
  type ByteReader,
  type ByteWriter,
  type ChunkSource,
  JsonLineWriter,
  readJsonLines,
} from "../src/json_lines.ts";
import type { JsonRpcMessage } from "../src/jsonrpc.ts";

const decoder = new TextDecoder();

/** A byte sink that records each write and finishes it only when told to. */
function slowSink() {
  const writes: string[] = [];
  const pending: (() => void)[] = [];
  let failWith: Error | undefined;
  let closed = false;
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      writes.push(decoder.decode(chunk));
      if (failWith !== undefined) return Promise.reject(failWith);
      return new Promise<void>((resolve) => pending.push(resolve));
    },
    close() {
      closed = true;
    },
  });
  return {
    stream,
    writes,
    /** Finishes the oldest write under way. */
    finishOne: () => pending.shift()?.(),
    failNext: (error: Error) => failWith = error,
    closed: () => closed,
  };
}

function ping(id: number): JsonRpcMessage {
  return { jsonrpc: "2.0", id, method: "ping" };
}

/** Lets queued microtasks and the stream's promise jobs run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("JsonLineWriter: a message goes out at once; what comes while a write is under way goes out as the next one", async () => {
  const sink = slowSink();
  const writer = new JsonLineWriter(sink.stream, () => assert.fail("not broken"));
  writer.write(ping(1));
  writer.write(ping(2));
  await settle();
  assert.deepEqual(sink.writes, ['{"jsonrpc":"2.0","id":1,"method":"ping"}\n'], "the first without waiting");
  writer.write(ping(3));
  await settle();
  writer.write(ping(4), '{"jsonrpc":"2.0", "id":4, "method":"ping"}');
  await settle();
  assert.equal(sink.writes.length, 1, "nothing more while the first write is under way");
  sink.finishOne();
  await settle();
  assert.deepEqual(sink.writes.slice(1), [
    '{"jsonrpc":"2.0","id":2,"method":"ping"}\n{"jsonrpc":"2.0","id":3,"method":"ping"}\n' +
    '{"jsonrpc":"2.0", "id":4, "method":"ping"}\n',
  ]);
  sink.finishOne();
  await writer.close();
  assert.ok(sink.closed());
});

Deno.test("JsonLineWriter: close() writes what is queued behind a write under way, then closes", async () => {
  const sink = slowSink();
  const writer = new JsonLineWriter(sink.stream, () => assert.fail("not broken"));
  writer.write(ping(1));
  await settle();
  writer.write(ping(2));
  const closing = writer.close();
  writer.write(ping(3));
  assert.equal(writer.open, false);
  sink.finishOne();
  await settle();
  sink.finishOne();
  await closing;
  assert.deepEqual(sink.writes, [
    '{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
    '{"jsonrpc":"2.0","id":2,"method":"ping"}\n',
  ]);
  assert.ok(sink.closed());
});

Deno.test("JsonLineWriter: a failed write calls onBroken once; later messages are dropped", async () => {
  const sink = slowSink();
  const failures: unknown[] = [];
  const writer = new JsonLineWriter(sink.stream, (error) => failures.push(error));
  sink.failNext(new Error("broken pipe"));
  writer.write(ping(1));
  await settle();
  writer.write(ping(2));
  await settle();
  assert.equal(failures.length, 1);
  assert.equal(writer.open, false);
  assert.equal(sink.writes.length, 1);
  await writer.close();
});

/** A file written at once, recording each write as text. */
function syncFile(): ByteWriter & { writes: string[] } {
  const writes: string[] = [];
  return {
    writes,
    writeSync(bytes) {
      writes.push(decoder.decode(bytes));
      return bytes.length;
    },
    write: () => assert.fail("a file written at once"),
    close() {},
  };
}

/** Lets the microtasks queued so far run, and those they queue, but not the end of the turn. */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Resolves at the end of the event loop's turn after the ones already asked for. */
const endOfTurn = () => new Promise((resolve) => setImmediate(resolve));

/** The line `ping(id)` is written as. */
const pingLine = (id: number) => `${JSON.stringify(ping(id))}\n`;

/** A writer to `file` that may hold messages while `mayHold` says so; by default every write is in a burst. */
function holdingWriter(file: ByteWriter, mayHold: () => boolean, burstMs = 3_600_000): JsonLineWriter {
  return new JsonLineWriter(file, () => assert.fail("not broken"), { mayHold, burstMs });
}

Deno.test("JsonLineWriter: in a burst, while the reader is busy, the messages of a turn wait for its end and go out as one write", async () => {
  const file = syncFile();
  let busy = true;
  const writer = holdingWriter(file, () => busy);
  writer.write(ping(1));
  assert.deepEqual(file.writes, [pingLine(1)], "the first write starts the burst: out at once");
  await microtasks();
  writer.write(ping(2));
  await microtasks();
  writer.write(ping(3), '{"jsonrpc":"2.0", "id":3, "method":"ping"}');
  await microtasks();
  assert.equal(file.writes.length, 1, "held to the end of the turn, with no write under way");
  await endOfTurn();
  assert.deepEqual(file.writes.slice(1), [pingLine(2) + '{"jsonrpc":"2.0", "id":3, "method":"ping"}\n']);
  // The reader idle again: the next message is not held.
  busy = false;
  writer.write(ping(4));
  assert.deepEqual(file.writes.slice(2), [pingLine(4)]);
  await microtasks();
  busy = true;
  writer.write(ping(5));
  busy = false;
  writer.write(ping(6));
  await microtasks();
  assert.equal(file.writes.length, 3, "behind a held message, one that would not be held waits its turn");
  await endOfTurn();
  assert.deepEqual(file.writes.slice(3), [pingLine(5) + pingLine(6)]);
  await writer.close();
});

Deno.test("JsonLineWriter: after a quiet spell, a message to a busy reader goes out at once", async () => {
  const file = syncFile();
  const writer = holdingWriter(file, () => true, 1);
  writer.write(ping(1));
  await new Promise((resolve) => setTimeout(resolve, 20));
  writer.write(ping(2));
  assert.deepEqual(file.writes, [pingLine(1), pingLine(2)]);
  await writer.close();
});

Deno.test("JsonLineWriter: close() writes the messages held to the end of the turn", async () => {
  const file = syncFile();
  const writer = holdingWriter(file, () => true);
  writer.write(ping(1));
  await microtasks();
  writer.write(ping(2));
  writer.write(ping(3));
  await microtasks();
  assert.equal(file.writes.length, 1, "held");
  await writer.close();
  assert.deepEqual(file.writes, [pingLine(1), pingLine(2) + pingLine(3)]);
  await endOfTurn();
  assert.equal(file.writes.length, 2, "nothing written twice at the end of the turn");
});

/** A file that hands out `pieces` one read at a time, each copied into the caller's buffer. */
function fileOf(pieces: string[]): ByteReader & { buffers: Set<ArrayBufferLike> } {
  const encoded = pieces.map((piece) => new TextEncoder().encode(piece));
  const buffers = new Set<ArrayBufferLike>();
  return {
    buffers,
    read(buffer) {
      buffers.add(buffer.buffer);
      const next = encoded.shift();
      if (next === undefined) return Promise.resolve(null);
      buffer.set(next);
      return Promise.resolve(next.length);
    },
  };
}

/** A source that pushes `pieces` one chunk each, from a later turn of the event loop; then fails with `failure` if given. */
function chunksOf(pieces: string[], failure?: Error): ChunkSource {
  return {
    pump: async (onChunk) => {
      for (const piece of pieces) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        onChunk(new TextEncoder().encode(piece));
      }
      if (failure !== undefined) throw failure;
    },
  };
}

async function linesRead(file: ByteReader | ChunkSource): Promise<string[]> {
  const lines: string[] = [];
  await readJsonLines(file, 1 << 20, {
    onMessage: (_message, line) => lines.push(line),
    onInvalid: (why, line) => assert.fail(`invalid (${why}): ${line}`),
    onOversize: () => assert.fail("oversize"),
    onError: (error) => assert.fail(String(error)),
  });
  return lines;
}

Deno.test("readJsonLines from a file: a line split across reads survives the reads after it", async () => {
  const a = JSON.stringify(ping(1));
  const b = JSON.stringify(ping(22));
  const c = JSON.stringify(ping(333));
  // b starts in the first read and ends in the third: its bytes must not be overwritten meanwhile.
  const file = fileOf([`${a}\n${b.slice(0, 9)}`, b.slice(9, 20), `${b.slice(20)}\n${c}\n`]);
  assert.deepEqual(await linesRead(file), [a, b, c]);
  // The framer copies what it keeps of a line, so every read goes into the same buffer.
  assert.equal(file.buffers.size, 1);
  const whole = fileOf([`${a}\n`, `${b}\n`, `${c}\n`, `${a}\n`]);
  assert.deepEqual(await linesRead(whole), [a, b, c, a]);
  assert.equal(whole.buffers.size, 1);
});

Deno.test("JsonLineWriter to a file: a write that takes only some bytes is continued; close() closes the file", async () => {
  const written: number[] = [];
  let closed = false;
  const file: ByteWriter = {
    write(bytes) {
      const count = Math.min(5, bytes.length);
      written.push(...bytes.subarray(0, count));
      return Promise.resolve(count);
    },
    close: () => closed = true,
  };
  const writer = new JsonLineWriter(file, () => assert.fail("not broken"));
  writer.write(ping(1));
  writer.write(ping(2));
  await writer.close();
  assert.equal(
    decoder.decode(new Uint8Array(written)),
    `${JSON.stringify(ping(1))}\n${JSON.stringify(ping(2))}\n`,
  );
  assert.equal(closed, true);
});

Deno.test("JsonLineWriter to a file: writeSync first; what would block goes on with write", async () => {
  const calls: string[] = [];
  const written: number[] = [];
  let syncLeft = 7;
  const file: ByteWriter = {
    writeSync(bytes) {
      if (syncLeft === 0) {
        calls.push("writeSync: would block");
        throw new Deno.errors.WouldBlock("full");
      }
      const count = Math.min(syncLeft, bytes.length);
      syncLeft -= count;
      calls.push(`writeSync ${count}`);
      written.push(...bytes.subarray(0, count));
      return count;
    },
    write(bytes) {
      calls.push(`write ${bytes.length}`);
      written.push(...bytes);
      return Promise.resolve(bytes.length);
    },
    close() {},
  };
  const writer = new JsonLineWriter(file, () => assert.fail("not broken"));
  writer.write(ping(1));
  await writer.close();
  const line = `${JSON.stringify(ping(1))}\n`;
  assert.equal(decoder.decode(new Uint8Array(written)), line);
  assert.deepEqual(calls, ["writeSync 7", "writeSync: would block", `write ${line.length - 7}`]);
});

Deno.test("JsonLineWriter to a file: a failed writeSync (a closed pipe) breaks the writer", async () => {
  const failures: unknown[] = [];
  const file: ByteWriter = {
    writeSync: () => {
      throw new Deno.errors.BrokenPipe("closed");
    },
    write: () => assert.fail("no asynchronous write after a broken pipe"),
    close() {},
  };
  const writer = new JsonLineWriter(file, (error) => failures.push(error));
  writer.write(ping(1));
  await settle();
  writer.write(ping(2));
  await writer.close();
  assert.equal(failures.length, 1);
  assert.ok(failures[0] instanceof Deno.errors.BrokenPipe);
});

/** A byte stream (as a child's stdout is) that hands out `pieces` one read at a time. */
function byteStreamOf(pieces: string[]): ReadableStream<Uint8Array> {
  const encoded = pieces.map((piece) => new TextEncoder().encode(piece));
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const request = controller.byobRequest!;
      const next = encoded.shift();
      if (next === undefined) {
        controller.close();
        request.respond(0);
        return;
      }
      // A piece larger than the reader's buffer is handed out over several reads.
      const view = request.view!;
      const count = Math.min(next.length, view.byteLength);
      new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(next.subarray(0, count));
      if (count < next.length) encoded.unshift(next.subarray(count));
      request.respond(count);
    },
  });
}

Deno.test("readJsonLines from a byte stream: one buffer is read into again, never under a line still open", async () => {
  const a = JSON.stringify(ping(1));
  const b = JSON.stringify(ping(22));
  const c = JSON.stringify(ping(333));
  const lines: string[] = [];
  await readJsonLines(
    byteStreamOf([`${a}\n${b.slice(0, 9)}`, b.slice(9, 20), `${b.slice(20)}\n${c}\n`, `${a}\n`]),
    1 << 20,
    {
      onMessage: (_message, line) => lines.push(line),
      onInvalid: (why, line) => assert.fail(`invalid (${why}): ${line}`),
      onOversize: () => assert.fail("oversize"),
      onError: (error) => assert.fail(String(error)),
    },
  );
  assert.deepEqual(lines, [a, b, c, a]);
});

Deno.test("readJsonLines: large lines are offered before they are decoded; a last one without its newline is not", async () => {
  const big = (id: number) => JSON.stringify({ jsonrpc: "2.0", id, result: { text: "x".repeat(70_000) } });
  const offered: number[] = [];
  const parsed: unknown[] = [];
  await readJsonLines(
    byteStreamOf([`${big(1)}\n${big(2)}\n${JSON.stringify(ping(3))}\n${big(4)}`]),
    1 << 20,
    {
      onMessage: (message) => parsed.push(message.id),
      onInvalid: (why, line) => assert.fail(`invalid (${why}): ${line}`),
      onOversize: () => assert.fail("oversize"),
      onError: (error) => assert.fail(String(error)),
      onLargeLine: (line) => {
        offered.push(line.length);
        return JSON.parse(new TextDecoder().decode(line)).id === 1;
      },
    },
  );
  assert.deepEqual(offered, [big(1).length, big(2).length]);
  assert.deepEqual(parsed, [2, 3, 4]);
});

/** Reads `source` with a long-line sink that keeps the pieces it may keep as they are; returns them joined. */
async function keptLongLine(
  source: ReadableStream<Uint8Array> | ByteReader | ChunkSource,
): Promise<{ long: string; lines: string[] }> {
  const kept: Uint8Array[] = [];
  const lines: string[] = [];
  let ended = false;
  await readJsonLines(source, 1 << 24, {
    onMessage: (_message, line) => lines.push(line),
    onInvalid: (why, line) => assert.fail(`invalid (${why}): ${line}`),
    onOversize: () => assert.fail("oversize"),
    onError: (error) => assert.fail(String(error)),
    onLongLine: () => ({
      write: (bytes, _noCarriageReturn, yours) => kept.push(yours ? bytes : bytes.slice()),
      end: () => ended = true,
      abort: (reason) => assert.fail(reason),
    }),
  });
  assert.ok(ended);
  const decoder = new TextDecoder();
  return { long: kept.map((piece) => decoder.decode(piece)).join(""), lines };
}

Deno.test("readJsonLines: pieces a long line's sink keeps are never read into again (byte stream, file, chunks)", async () => {
  const long = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { text: "0123456789abcdef".repeat(20_000) } });
  const after = JSON.stringify(ping(2));
  // Reads of many sizes (up to the 64 KiB a read takes), ending inside the line, the next starting in one.
  const pieces: string[] = [];
  const all = `${long}\n${after}\n${after}\n`;
  for (let at = 0, size = 1000; at < all.length; at += size, size = (size * 7) % 60_001 + 2000) {
    pieces.push(all.slice(at, at + size));
  }
  const fromStream = await keptLongLine(byteStreamOf(pieces));
  assert.ok(fromStream.long === long, "the streamed line is the line, byte for byte");
  assert.deepEqual(fromStream.lines, [after, after]);
  const file = fileOf(pieces);
  const fromFile = await keptLongLine(file);
  assert.ok(fromFile.long === long, "the streamed line is the line, byte for byte (file)");
  assert.deepEqual(fromFile.lines, [after, after]);
  assert.ok(file.buffers.size > 1, "a read after a kept chunk goes into a new buffer");
  const fromChunks = await keptLongLine(chunksOf(pieces));
  assert.ok(fromChunks.long === long, "the streamed line is the line, byte for byte (chunk source)");
  assert.deepEqual(fromChunks.lines, [after, after]);
});

Deno.test("readJsonLines from a chunk source: lines split across chunks, the last one unterminated", async () => {
  const a = JSON.stringify(ping(1));
  const b = JSON.stringify(ping(22));
  const c = JSON.stringify(ping(333));
  assert.deepEqual(
    await linesRead(chunksOf([`${a}\n${b.slice(0, 9)}`, b.slice(9, 20), `${b.slice(20)}\n${c}`])),
    [
      a,
      b,
      c,
    ],
  );
});

Deno.test("readJsonLines from a chunk source: a failed read is reported once, after the lines before it", async () => {
  const lines: string[] = [];
  const errors: unknown[] = [];
  const failure = new Error("connection reset");
  await readJsonLines(chunksOf([`${JSON.stringify(ping(1))}\n`], failure), 1 << 20, {
    onMessage: (_message, line) => lines.push(line),
    onInvalid: (why, line) => assert.fail(`invalid (${why}): ${line}`),
    onOversize: () => assert.fail("oversize"),
    onError: (error) => errors.push(error),
  });
  assert.deepEqual(lines, [JSON.stringify(ping(1))]);
  assert.deepEqual(errors, [failure]);
});

Deno.test("JsonLineWriter: a message given as bytes is written as they are, in its place among the texts", async () => {
  const written: Uint8Array[] = [];
  let release!: () => void;
  const blocked = new Promise<void>((resolve) => release = resolve);
  const writer = new JsonLineWriter(
    new WritableStream<Uint8Array>({
      async write(chunk) {
        written.push(chunk);
        if (written.length === 1) await blocked;
      },
    }),
    () => assert.fail("no write fails"),
  );
  const large = new TextEncoder().encode(JSON.stringify(ping(2)));
  writer.write(ping(1)); // Goes out at once; the rest queues behind it.
  writer.write(ping(2), large);
  writer.write(ping(3));
  writer.write(ping(4), JSON.stringify(ping(4)));
  writer.write(ping(5), large);
  // In pieces, one after the other, each as it is.
  const pieces = [large.subarray(0, 10), large.subarray(10)];
  writer.write(ping(2), pieces);
  writer.write(ping(6));
  release();
  await writer.close();
  const decoder = new TextDecoder();
  assert.equal(
    written.map((chunk) => decoder.decode(chunk)).join(""),
    [1, 2, 3, 4, 2, 2, 6].map((id) => JSON.stringify(ping(id)) + "\n").join(""),
  );
  assert.ok(written.includes(large), "the bytes themselves, not a copy");
  assert.ok(pieces.every((piece) => written.includes(piece)), "the pieces themselves");
});

Deno.test("JsonLineWriter: pendingBytes counts what is queued and under way, none once written", async () => {
  const sink = slowSink();
  const writer = new JsonLineWriter(sink.stream, () => {});
  assert.equal(writer.pendingBytes, 0);
  writer.write(ping(1));
  writer.write(ping(2), '{"jsonrpc":"2.0","id":2,"method":"ping"}');
  const one = JSON.stringify(ping(1)).length;
  assert.equal(writer.pendingBytes, 2 * one);
  await settle();
  sink.finishOne();
  await settle();
  sink.finishOne();
  await settle();
  assert.equal(writer.pendingBytes, 0);
  await writer.close();
});
