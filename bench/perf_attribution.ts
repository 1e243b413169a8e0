/**
 * Where a process's CPU goes per call, from Linux `perf` samples of it: each sample of the main thread
 * is charged to the innermost JavaScript function on its stack, with the native code and kernel work
 * beneath it (a `TextEncoder.encode` is charged with the copy it makes, a `conn.write` with its
 * syscall), or, with no JavaScript on the stack, to what is outermost (the event loop, an op's syscall).
 * Other threads' samples (V8's GC and compiler helpers, Deno's pools) are charged to their thread.
 *
 * A V8 `.cpuprofile` sees JavaScript only, and charges a builtin's native work to the builtin; these
 * figures add up to the process's whole CPU time, kernel included, so that a sum of steps can be held
 * against the CPU per call of `bench/compare.ts`. They need the functions' names from V8, which writes
 * them to `/tmp/perf-PID.map` under `--perf-basic-prof` (`--interpreted-frames-native-stack` names the
 * functions that run in the interpreter too).
 *
 * Pure: it reads the text of `perf script -F comm,tid,time,ip,sym,dso`; `bench/perf_calls.ts` runs it all.
 *
 * @module
 */

/** CPU time by where it went, as sample counts; see the module documentation. */
export interface Attribution {
  /** Samples of every thread. */
  samples: number;
  /** Seconds from the first sample to the last. */
  seconds: number;
  /** Samples by innermost JavaScript function, or by what else they were charged to. */
  self: Map<string, number>;
  /** Samples with each JavaScript function anywhere on the stack, counted once per sample. */
  inclusive: Map<string, number>;
}

/** The functions V8 named: in its map file, which `perf script` shows as the frame's file. */
function isJavaScript(dso: string): boolean {
  return /\/perf-\d+\.map$/.test(dso) || dso.startsWith("[JIT]");
}

/**
 * A V8 name as `perf` shows it, made readable: `JS:*'parse file:///x/src/a.ts:12:3` → `parse src/a.ts`.
 * The marks of the tiers (`*`, `+`, `^`, `~`) are dropped, so that a function counts once whatever
 * compiled it; so is the position, which is that of the transpiled code.
 */
export function functionName(symbol: string, root: string): string {
  let name = symbol.replace(/^(JS|Function|LazyCompile):[*+^~]?'?/, "");
  name = name.replace(/:\d+:\d+$/, "");
  // npm packages, from Deno's cache or a node_modules directory: `npm:hono@4.13.23/dist/…`.
  name = name.replace(/file:\/\/\S*\/registry\.npmjs\.org\/(\S+?)\/(\d[^/\s]*)\//, "npm:$1@$2/");
  name = name.replace(
    /file:\/\/\S*\/node_modules\/\.deno\/([^/\s]+)\/node_modules\/(?:@[^/\s]+\/)?[^/\s]+\//,
    "npm:$1/",
  );
  if (root !== "") name = name.replaceAll(`file://${root}/`, "");
  name = name.replace(/^ext:/, "").replace(/ ext:/, " ");
  return name === "" || name.startsWith(" ") ? `(anonymous)${name}` : name;
}

/**
 * Attributes the samples in `script` (the text of `perf script -F comm,tid,time,ip,sym,dso`) of the process
 * `pid`; `root` is the directory whose file URLs are shown relative to it.
 */
export function attribute(script: string, pid: number, root = ""): Attribution {
  const attribution: Attribution = { samples: 0, seconds: 0, self: new Map(), inclusive: new Map() };
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  let first = Infinity;
  let last = -Infinity;
  for (const block of script.split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((line) => line.trim() !== "");
    if (lines.length === 0) continue;
    // The header: the thread's name (which may hold spaces), its id, and the time in seconds.
    const header = /^\s*(.*?)\s+(\d+)\s+(\d+\.\d+):/.exec(lines[0]);
    if (header === null) continue;
    const [, thread, tid, time] = header;
    attribution.samples++;
    first = Math.min(first, Number(time));
    last = Math.max(last, Number(time));
    if (Number(tid) !== pid) {
      add(attribution.self, `thread ${thread.trim()}`);
      continue;
    }
    const frames: { symbol: string; dso: string }[] = [];
    for (const line of lines.slice(1)) {
      const frame = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line);
      if (frame !== null) frames.push({ symbol: frame[1], dso: frame[2] });
    }
    const innermost = frames.find((frame) => isJavaScript(frame.dso));
    if (innermost !== undefined) add(attribution.self, `JS ${functionName(innermost.symbol, root)}`);
    else {
      const outermost = frames.at(-1)?.symbol ?? "";
      add(
        attribution.self,
        outermost === "" || /^(__libc_start_call_main|_start|main)$/.test(outermost)
          ? "native, no JS on the stack (event loop, ops, GC)"
          : `native, no JS on the stack, under ${outermost}`,
      );
    }
    const seen = new Set<string>();
    for (const frame of frames) {
      if (!isJavaScript(frame.dso)) continue;
      const name = functionName(frame.symbol, root);
      if (seen.has(name)) continue;
      seen.add(name);
      add(attribution.inclusive, name);
    }
  }
  attribution.seconds = attribution.samples === 0 ? 0 : last - first;
  return attribution;
}
