import assert from "node:assert/strict";
import { LineFramer, LineSplitter } from "../src/line_splitter.ts";

const encoder = new TextEncoder();

interface Split {
  lines: string[];
  oversize: number[];
}

/** Runs `chunks` through a LineSplitter and decodes the lines, failing on broken UTF-8. */
async function split(chunks: (string | Uint8Array)[], maxLineBytes = 1024): Promise<Split> {
  const oversize: number[] = [];
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const source = ReadableStream.from(
    chunks.map((chunk) => typeof chunk === "string" ? encoder.encode(chunk) : chunk),
  );
  const lines: string[] = [];
  const splitter = new LineSplitter({ maxLineBytes, onOversizeLine: (bytes) => oversize.push(bytes) });
  for await (const line of source.pipeThrough(splitter)) lines.push(decoder.decode(line));
  return { lines, oversize };
}

/** A stream of `total` bytes of `fill`, in fresh chunks of `chunkSize`, then `tail`. */
function bigLine(total: number, chunkSize: number, fill: number, tail: string): ReadableStream<Uint8Array> {
  let sent = 0;
  let tailSent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent < total) {
        const size = Math.min(chunkSize, total - sent);
        controller.enqueue(new Uint8Array(size).fill(fill));
        sent += size;
      } else if (!tailSent) {
        controller.enqueue(encoder.encode(tail));
        tailSent = true;
      } else {
        controller.close();
      }
    },
  });
}

Deno.test("LineSplitter: joins a line split across chunks", async () => {
  assert.deepEqual(await split(['{"a":', "1", '}\n{"b"', ":2}\n"]), {
    lines: ['{"a":1}', '{"b":2}'],
    oversize: [],
  });
});

Deno.test("LineSplitter: splits several lines in one chunk", async () => {
  assert.deepEqual((await split(["one\ntwo\nthree\n"])).lines, ["one", "two", "three"]);
});

Deno.test("LineSplitter: a chunk ending right at a newline, and empty chunks, change nothing", async () => {
  assert.deepEqual((await split(["one\n", new Uint8Array(0), "two\n", "", "three\n"])).lines, [
    "one",
    "two",
    "three",
  ]);
});

Deno.test("LineSplitter: strips the \\r of \\r\\n, also when split across chunks", async () => {
  assert.deepEqual((await split(["one\r\ntwo\r", "\nthree\r\n"])).lines, ["one", "two", "three"]);
});

Deno.test("LineSplitter: keeps a \\r inside a line", async () => {
  assert.deepEqual((await split(["a\rb\n"])).lines, ["a\rb"]);
});

Deno.test("LineSplitter: skips empty lines, including lone \\r", async () => {
  assert.deepEqual((await split(["\n\none\n\r\n\n", "\ntwo\n\n"])).lines, ["one", "two"]);
});

Deno.test("LineSplitter: emits a final line without newline at the end of the stream", async () => {
  assert.deepEqual((await split(["one\ntw", "o"])).lines, ["one", "two"]);
  assert.deepEqual((await split(["last\r"])).lines, ["last"]);
  assert.deepEqual((await split([])).lines, []);
});

Deno.test("LineSplitter: drops a line longer than the cap, reports its byte length, delivers the next", async () => {
  const result = await split(["ok\n", "x".repeat(11) + "\n", "next\n"], 10);
  assert.deepEqual(result, { lines: ["ok", "next"], oversize: [11] });
});

Deno.test("LineSplitter: a line of exactly the cap is kept", async () => {
  assert.deepEqual(await split(["x".repeat(10) + "\nyy\n"], 10), {
    lines: ["x".repeat(10), "yy"],
    oversize: [],
  });
});

Deno.test("LineSplitter: the \\r of a \\r\\n does not count against the cap, whichever chunk holds it", async () => {
  const x = "x".repeat(10);
  for (const chunks of [[`${x}\r\n`], [x, "\r\n"], [`${x}\r`, "\n"], ["xxxxx", "xxxxx\r", "\n"]]) {
    assert.deepEqual(
      await split([...chunks, "yy\n"], 10),
      { lines: [x, "yy"], oversize: [] },
      chunks.join("|"),
    );
  }
  // One byte more is over the cap, reported with the line's own length.
  for (const chunks of [[`${x}x\r\n`], [`${x}x`, "\r\n"], [`${x}x\r`, "\n"], [`${x}\r`, "x\n"]]) {
    const expected = chunks.join("").startsWith(`${x}\r`) ? 12 : 11;
    assert.deepEqual(
      await split([...chunks, "yy\n"], 10),
      { lines: ["yy"], oversize: [expected] },
      chunks.join("|"),
    );
  }
});

Deno.test("LineSplitter: an oversize line arriving in pieces is reported once with its full length", async () => {
  const result = await split(["12345", "67890", "12\n", "ok", "\n"], 10);
  assert.deepEqual(result, { lines: ["ok"], oversize: [12] });
});

Deno.test("LineSplitter: an oversize line cut off by the end of the stream is reported", async () => {
  assert.deepEqual(await split(["ok\n", "x".repeat(15)], 10), { lines: ["ok"], oversize: [15] });
});

Deno.test("LineSplitter: counts bytes, not characters, against the cap", async () => {
  const result = await split(["é".repeat(5) + "\n", "é".repeat(6) + "\n"], 10);
  assert.deepEqual(result, { lines: ["é".repeat(5)], oversize: [12] });
});

Deno.test("LineSplitter: drops an oversize line quietly when no callback is given", async () => {
  const source = ReadableStream.from([encoder.encode("x".repeat(20) + "\nok\n")]);
  const lines: string[] = [];
  for await (const line of source.pipeThrough(new LineSplitter({ maxLineBytes: 10 }))) {
    lines.push(new TextDecoder().decode(line));
  }
  assert.deepEqual(lines, ["ok"]);
});

Deno.test("LineSplitter: keeps multi-byte UTF-8 characters split across chunks intact", async () => {
  const text = "héllo 世界 🙂";
  const bytes = encoder.encode(text + "\n");
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) chunks.push(bytes.slice(i, i + 1));
  assert.deepEqual((await split(chunks)).lines, [text]);

  const emoji = encoder.encode("🙂\n");
  assert.deepEqual((await split([emoji.slice(0, 2), emoji.slice(2)])).lines, ["🙂"]);
});

Deno.test("LineSplitter: returns each line's bytes unchanged", async () => {
  const bytes = new Uint8Array([0x00, 0xff, 0x0d, 0x41, 0x0a, 0x7f, 0x0a]);
  const lines: number[][] = [];
  const source = ReadableStream.from([bytes.slice(0, 3), bytes.slice(3)]);
  for await (const line of source.pipeThrough(new LineSplitter({ maxLineBytes: 100 }))) lines.push([...line]);
  assert.deepEqual(lines, [[0x00, 0xff, 0x0d, 0x41], [0x7f]]);
});

Deno.test("LineSplitter: a 20 MB line in 64 KiB chunks is delivered whole", async () => {
  const total = 20 * 1024 * 1024;
  const lines: Uint8Array[] = [];
  const splitter = new LineSplitter({ maxLineBytes: 32 * 1024 * 1024 });
  for await (const line of bigLine(total, 64 * 1024, 0x61, "\nafter\n").pipeThrough(splitter)) {
    lines.push(line);
  }
  assert.equal(lines.length, 2);
  assert.equal(lines[0].length, total);
  assert.ok(lines[0].every((byte) => byte === 0x61), "the line's content is intact");
  assert.equal(new TextDecoder().decode(lines[1]), "after");
});

Deno.test("LineSplitter: a 20 MB line over the cap in 64 KiB chunks is dropped and the next line kept", async () => {
  const total = 20 * 1024 * 1024;
  const oversize: number[] = [];
  const lines: string[] = [];
  const splitter = new LineSplitter({
    maxLineBytes: 1024 * 1024,
    onOversizeLine: (bytes) => oversize.push(bytes),
  });
  for await (const line of bigLine(total, 64 * 1024, 0x61, "\nafter\n").pipeThrough(splitter)) {
    lines.push(new TextDecoder().decode(line));
  }
  assert.deepEqual(lines, ["after"]);
  assert.deepEqual(oversize, [total]);
});

Deno.test("LineSplitter: a dropped line is reported with its first and last 4 KiB", async () => {
  const reports: { bytes: number; head: string; tail: string }[] = [];
  const decoder = new TextDecoder();
  const splitter = new LineSplitter({
    maxLineBytes: 10_000,
    onOversizeLine: (bytes, head, tail) =>
      reports.push({ bytes, head: decoder.decode(head), tail: decoder.decode(tail) }),
  });
  const long = "H".repeat(5000) + "m".repeat(20_000) + "T".repeat(5000);
  const chunks = [long.slice(0, 3000), long.slice(3000, 17_000), long.slice(17_000) + "\nok\n"];
  const encoder = new TextEncoder();
  const lines: string[] = [];
  const writer = splitter.writable.getWriter();
  const reading = (async () => {
    for await (const line of splitter.readable) lines.push(decoder.decode(line));
  })();
  for (const chunk of chunks) await writer.write(encoder.encode(chunk));
  await writer.close();
  await reading;
  assert.deepEqual(lines, ["ok"]);
  assert.equal(reports.length, 1);
  assert.equal(reports[0].bytes, 30_000);
  assert.equal(reports[0].head, "H".repeat(4096));
  assert.equal(reports[0].tail, "T".repeat(4096));
});

/** A LineFramer fed `chunks`, with a long-line sink that takes lines when `take` says so. */
function frameLong(chunks: string[], take: (start: string) => boolean, maxLineBytes = 1 << 20) {
  const decoder = new TextDecoder();
  const events: string[] = [];
  const lines: string[] = [];
  const oversize: number[] = [];
  const framer = new LineFramer({
    maxLineBytes,
    longLineBytes: 10,
    onOversizeLine: (bytes) => oversize.push(bytes),
    onLongLine: (start) => {
      events.push(`offer ${decoder.decode(start)}`);
      if (!take(decoder.decode(start))) return undefined;
      return {
        write: (bytes) => events.push(`write ${decoder.decode(bytes)}`),
        end: () => events.push("end"),
        abort: (reason) => events.push(`abort ${reason}`),
      };
    },
  });
  for (const chunk of chunks) framer.push(encoder.encode(chunk), (line) => lines.push(decoder.decode(line)));
  framer.end((line) => lines.push(decoder.decode(line)));
  return { events, lines, oversize };
}

Deno.test("LineFramer: a long line is offered once, then streams to the sink piece by piece", () => {
  const { events, lines } = frameLong(["a\nlong-line-", "goes-on-", "and-ends\nb\n"], () => true);
  assert.deepEqual(events, [
    "offer long-line-",
    "write long-line-",
    "write goes-on-",
    "write and-ends",
    "end",
  ]);
  assert.deepEqual(lines, ["a", "b"]);
});

Deno.test("LineFramer: a long line the sink refuses is gathered and delivered whole", () => {
  const { events, lines } = frameLong(["long-line-", "goes-on-", "and-ends\n"], () => false);
  assert.deepEqual(events, ["offer long-line-"]);
  assert.deepEqual(lines, ["long-line-goes-on-and-ends"]);
});

Deno.test("LineFramer: the \\r of a \\r\\n never reaches the sink; a \\r inside the line does", () => {
  const { events } = frameLong(["long-line-\r", "in\r", "\r", "\n"], () => true);
  // No empty piece is written for a chunk that is only the held `\r`.
  assert.deepEqual(events, [
    "offer long-line-\r",
    "write long-line-",
    "write \r",
    "write in",
    "write \r",
    "end",
  ]);
});

Deno.test("LineFramer: a streaming line cut off by the end of input or by the cap is aborted", () => {
  const ended = frameLong(["long-line-", "no-newline"], () => true);
  assert.deepEqual(ended.events.slice(-1), ["abort the input ended before the line did"]);
  assert.deepEqual(ended.lines, []);
  const capped = frameLong(["long-line-", "0123456789", "0123456789\nnext\n"], () => true, 25);
  assert.deepEqual(capped.events, [
    "offer long-line-",
    "write long-line-",
    "write 0123456789",
    "abort the line is longer than 25 bytes",
  ]);
  assert.deepEqual(capped.oversize, [30]);
  assert.deepEqual(capped.lines, ["next"]);
});

Deno.test("LineFramer: a streaming line of exactly the cap ending in \\r\\n ends; one byte more is aborted", () => {
  const exact = frameLong(["long-line-", "0123456789\r", "\nnext\n"], () => true, 20);
  assert.deepEqual(exact.events.slice(-1), ["end"]);
  assert.deepEqual(exact.oversize, []);
  const over = frameLong(["long-line-", "0123456789\r", "x\r\nnext\n"], () => true, 20);
  assert.deepEqual(over.events.slice(-1), ["abort the line is longer than 20 bytes"]);
  assert.deepEqual(over.oversize, [22]);
  assert.deepEqual(over.lines, ["next"]);
});

Deno.test("LineFramer: pieces of the chunk pushed are the sink's to keep, and push says so; its own buffer and a held \\r are not", () => {
  const writes: { text: string; yours: boolean | undefined; buffer: ArrayBufferLike }[] = [];
  const framer = new LineFramer({
    maxLineBytes: 1 << 20,
    longLineBytes: 10,
    onLongLine: () => ({
      write: (bytes, _noCarriageReturn, yours) =>
        writes.push({ text: new TextDecoder().decode(bytes), yours, buffer: bytes.buffer }),
      end: () => {},
      abort: () => {},
    }),
  });
  const noLine = () => assert.fail("no line is complete");
  // The start of the line is gathered in the framer's buffer: a view good only during the call.
  assert.equal(framer.push(encoder.encode("long-line-"), noLine), false);
  const second = encoder.encode("goes-on-\r");
  assert.equal(framer.push(second, noLine), true);
  // The \r held back from the last piece is written later, and is not the chunk's.
  const lines: string[] = [];
  const third = encoder.encode("\rends-here\nnext\n");
  assert.equal(framer.push(third, (line) => lines.push(new TextDecoder().decode(line))), true);
  assert.deepEqual(writes.map(({ text, yours }) => [text, yours]), [
    ["long-line-", false],
    ["goes-on-", true],
    ["\r", false],
    ["\rends-here", true],
  ]);
  assert.equal(writes[1].buffer, second.buffer, "the chunk's own memory, not a copy");
  assert.equal(writes[3].buffer, third.buffer);
  assert.deepEqual(lines, ["next"]);
});

Deno.test("LineFramer: a piece that fills less than half of its chunk's memory is not the sink's to keep", () => {
  const writes: (boolean | undefined)[] = [];
  const framer = new LineFramer({
    maxLineBytes: 1 << 20,
    longLineBytes: 10,
    onLongLine: () => ({
      write: (_bytes, _noCarriageReturn, yours) => writes.push(yours),
      end: () => {},
      abort: () => {},
    }),
  });
  framer.push(encoder.encode("long-line-"), () => {});
  // A read of 8 bytes into a 64-byte buffer: keeping it would keep all 64.
  const buffer = new Uint8Array(64);
  buffer.set(encoder.encode("goes-on-"));
  assert.equal(framer.push(buffer.subarray(0, 8), () => {}), false);
  buffer.set(encoder.encode("x".repeat(32)));
  assert.equal(framer.push(buffer.subarray(0, 32), () => {}), true);
  assert.deepEqual(writes, [false, false, true]);
});

Deno.test("LineFramer: a line gathered from chunks that hold no \\r says so; a \\r or a small chunk, not", () => {
  const encoder = new TextEncoder();
  const lines = (chunks: string[]) => {
    const framer = new LineFramer({ maxLineBytes: 1 << 22 });
    const seen: [number, boolean | undefined][] = [];
    for (const chunk of chunks) {
      framer.push(encoder.encode(chunk), (line, clean) => seen.push([line.length, clean]));
    }
    return seen;
  };
  const big = "x".repeat(10_000);
  // Gathered from large chunks without a `\r`: known clean. A small chunk is never decoded, so not known
  // clean; nor is a line that ends with `\r\n`.
  assert.deepEqual(lines([big, big + "\n"]), [[20_000, true]]);
  assert.deepEqual(lines([big, big, "y\n"]), [[20_001, false]]);
  assert.deepEqual(lines([big, big + "\r\n"]), [[20_000, false]]);
  // A `\r` in the line, or in another line of a chunk it came from: not known clean.
  assert.deepEqual(lines([big, "a\rb" + big + "\n"]), [[20_003, false]]);
  assert.deepEqual(lines(["a\r\n" + big, big + "\n"]), [[1, undefined], [20_000, false]]);
  // The next line starts clean again.
  assert.deepEqual(lines([big + "\r", "\n" + big, big + "\n"]), [[10_000, false], [20_000, true]]);
});
