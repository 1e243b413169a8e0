/**
 * Summarizes a V8 `.cpuprofile` (as `deno run --cpu-prof` writes, and `bench/main.ts --cpu-prof DIR`
 * gets from mcp-proxy): the functions with the most self time, self time by module, and the functions
 * with the most total time (self and callees), with idle time left out of the percentages.
 *
 * Run: `deno run --allow-read bench/cpu_profile_summary.ts FILE.cpuprofile [--top N]`.
 *
 * @module
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Times in µs of `profile`, and its busy (not idle) total. */
export interface ProfileTimes {
  /** Self time of each function (name, file and line). */
  functions: Map<string, number>;
  /** Self time of each module (file, npm package file, or Deno extension). */
  modules: Map<string, number>;
  /** Total time of each function: the samples with the function anywhere on the stack. */
  inclusive: Map<string, number>;
  busy: number;
  total: number;
}

function frameName(frame: CallFrame): string {
  const where = frame.url === "" ? "" : ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
  return `${frame.functionName || "(anonymous)"}${where}`;
}

/** Self and total times of the functions and modules of `profile`. */
export function profileTimes(profile: CpuProfile): ProfileTimes {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const times: ProfileTimes = {
    functions: new Map(),
    modules: new Map(),
    inclusive: new Map(),
    busy: 0,
    total: 0,
  };
  const add = (map: Map<string, number>, key: string, micros: number) =>
    map.set(key, (map.get(key) ?? 0) + micros);
  // timeDeltas[i] is the time from sample i-1 to sample i: the time sample i-1 stood for.
  for (let i = 0; i < profile.samples.length; i++) {
    const micros = profile.timeDeltas[i + 1] ?? 0;
    const frame = nodes.get(profile.samples[i])?.callFrame;
    if (frame === undefined || micros <= 0) continue;
    times.total += micros;
    if (frame.functionName === "(idle)") continue;
    times.busy += micros;
    add(times.functions, frameName(frame), micros);
    add(times.modules, frame.url === "" ? frame.functionName : moduleOf(frame.url), micros);
    const seen = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parents.get(id)) {
      const name = frameName(nodes.get(id)!.callFrame);
      if (seen.has(name) || name === "(root)") continue;
      seen.add(name);
      add(times.inclusive, name, micros);
    }
  }
  return times;
}

function shortUrl(url: string): string {
  const npm = /\/npm\/registry\.npmjs\.org\/(.+)$/.exec(url);
  if (npm !== null) return `npm:${npm[1]}`;
  return url.replace(/^file:\/\/\/.*?\/(src|bench|tests|scripts)\//, "$1/").replace(/^file:\/\/\/.*\//, "");
}

function moduleOf(url: string): string {
  const npm = /\/npm\/registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\/[^/]+\/(.*)$/.exec(url);
  if (npm !== null) return `npm:${npm[1]}/${npm[2]}`;
  if (url.startsWith("ext:") || url.startsWith("node:")) return url.replace(/^(ext:[^/]+).*/, "$1");
  return shortUrl(url);
}

function table(entries: Map<string, number>, busy: number, top: number): string {
  return [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, micros]) =>
      `${(micros / 1000).toFixed(1).padStart(9)} ms ${(100 * micros / busy).toFixed(1).padStart(5)}%  ${name}`
    )
    .join("\n");
}

if (import.meta.main) {
  const file = Deno.args.find((arg) => !arg.startsWith("--"));
  const topIndex = Deno.args.indexOf("--top");
  const top = topIndex === -1 ? 25 : Number(Deno.args[topIndex + 1]);
  if (file === undefined) {
    Deno.stderr.writeSync(
      new TextEncoder().encode("usage: deno run --allow-read bench/cpu_profile_summary.ts FILE [--top N]\n"),
    );
    Deno.exit(2);
  }
  const { functions, modules, inclusive, busy, total } = profileTimes(
    JSON.parse(Deno.readTextFileSync(file)),
  );
  const text = `${file}: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy ` +
    `(percentages are of busy time)\n\nTop functions by self time:\n${table(functions, busy, top)}\n\n` +
    `Self time by module:\n${table(modules, busy, top)}\n\n` +
    `Top functions by total time (self and callees):\n${table(inclusive, busy, top)}\n`;
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}
