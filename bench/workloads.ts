/**
 * The benchmark's workloads, the same on every path: sequential 1 KiB calls, concurrent 1 KiB calls over
 * several sessions (or one), and large round trips. Every answer is checked; a wrong one throws.
 *
 * @module
 */

import { blobText } from "./echo_handler.ts";
import type { McpChannel } from "./mcp_channels.ts";

/** Size of the text of a small call. */
export const SMALL_CALL_BYTES = 1024;
/** Size of the text of a large call or answer. */
export const LARGE_BYTES = 1024 * 1024;

/** A fixed pseudo-random filler, so that every path carries the same bytes. */
const FILLER = (() => {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?()[]{}<>/\\\"'";
  let state = 0x2545f491;
  let text = "";
  while (text.length < SMALL_CALL_BYTES) {
    state = (state * 1103515245 + 12345) >>> 0;
    text += alphabet[state % alphabet.length];
  }
  return text;
})();

/** A 1 KiB ASCII text that starts with `tag`, so that an answer given to the wrong call shows. */
export function smallText(tag: string): string {
  return `${tag}:${FILLER}`.slice(0, SMALL_CALL_BYTES);
}

/** A text of {@link LARGE_BYTES} ASCII characters that starts with `tag`. */
export function largeText(tag: string): string {
  return `${tag}:` + blobText(LARGE_BYTES - tag.length - 1);
}

function describe(value: unknown): string {
  if (typeof value !== "string") return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  return `${value.length} characters starting ${JSON.stringify(value.slice(0, 40))}`;
}

function check(channel: McpChannel, result: unknown, expected: string): void {
  const content = (result as { content?: { type?: string; text?: unknown }[] } | undefined)?.content;
  const text = content?.[0]?.text;
  if (text !== expected) {
    throw new Error(
      `${channel.label}: wrong answer: expected ${describe(expected)}, got ${describe(text ?? result)}`,
    );
  }
}

/** Calls `echo` with `text` and checks that it came back. */
export async function callEcho(channel: McpChannel, text: string): Promise<void> {
  check(channel, await channel.request("tools/call", { name: "echo", arguments: { text } }), text);
}

/** Calls `blob` for `bytes` characters and checks them. */
export async function callBlob(channel: McpChannel, bytes: number): Promise<void> {
  check(
    channel,
    await channel.request("tools/call", { name: "blob", arguments: { bytes } }),
    blobText(bytes),
  );
}

/** `calls` sequential 1 KiB echo calls after `warmup` unmeasured ones; the latency of each, in ms. */
export async function sequentialLatencies(
  channel: McpChannel,
  calls: number,
  warmup: number,
  onMeasuredStart: () => void = () => {},
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await callEcho(channel, smallText(`w${i}`));
  const texts = Array.from({ length: calls }, (_, i) => smallText(`s${i}`));
  const latencies: number[] = [];
  onMeasuredStart();
  for (const text of texts) {
    const start = performance.now();
    await callEcho(channel, text);
    latencies.push(performance.now() - start);
  }
  return latencies;
}

/** Throughput over several rounds of concurrent calls. */
export interface Throughput {
  /** Calls per round. */
  calls: number;
  /** Calls per second of each round. */
  rounds: number[];
  /** The median of `rounds`. */
  callsPerSecond: number;
}

/**
 * `rounds` rounds in which one worker per entry of `channels` (the same channel may appear several
 * times: that many requests in flight on one session) makes `callsEach` sequential 1 KiB echo calls, all
 * workers at once; after a round of `warmupEach` unmeasured calls per worker.
 */
export async function concurrentThroughput(
  channels: McpChannel[],
  callsEach: number,
  warmupEach: number,
  rounds: number,
  onMeasuredStart: () => void = () => {},
): Promise<Throughput> {
  const texts = (prefix: string, count: number) =>
    channels.map((_, worker) =>
      Array.from({ length: count }, (_, i) => smallText(`${prefix}${worker}.${i}`))
    );
  const round = async (texts: string[][]) => {
    await Promise.all(channels.map(async (channel, worker) => {
      for (const text of texts[worker]) await callEcho(channel, text);
    }));
  };
  await round(texts("w", warmupEach));
  const measured = Array.from({ length: rounds }, (_, r) => texts(`c${r}.`, callsEach));
  const calls = channels.length * callsEach;
  const perSecond: number[] = [];
  onMeasuredStart();
  for (const texts of measured) {
    const start = performance.now();
    await round(texts);
    perSecond.push(calls / ((performance.now() - start) / 1000));
  }
  return { calls, rounds: perSecond, callsPerSecond: percentile(perSecond, 50) };
}

/** Which large round trip: a 1 MiB text echoed (request and answer), or a 1 MiB answer to a small call. */
export type LargeKind = "echo" | "blob";

/** `iterations` large round trips after `warmup` unmeasured ones; the latency of each, in ms. */
export async function largeLatencies(
  channel: McpChannel,
  kind: LargeKind,
  iterations: number,
  warmup: number,
): Promise<number[]> {
  const texts = Array.from({ length: warmup + iterations }, (_, i) => largeText(`L${i}`));
  const once = kind === "echo"
    ? (i: number) => callEcho(channel, texts[i])
    : () => callBlob(channel, LARGE_BYTES);
  for (let i = 0; i < warmup; i++) await once(i);
  const latencies: number[] = [];
  for (let i = warmup; i < warmup + iterations; i++) {
    const start = performance.now();
    await once(i);
    latencies.push(performance.now() - start);
  }
  return latencies;
}

/** The `p`-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}
