/**
 * `deno task compile [--all]`: standalone binaries in `dist/`, `mcp-proxy-<target>[.exe]`, for this
 * platform or (with `--all`) every target `deno compile` supports.
 *
 * The permissions (explicitly rather than with `-A`) and the V8 flags are baked in: see `permissions.ts`.
 *
 * `deno compile` downloads a runtime; where that download cannot be reached, this prints a `skipped:`
 * line and exits 0, so that builds on closed networks stay green.
 *
 * @module
 */

import { PERMISSIONS, V8_FLAGS_ARGUMENT } from "./permissions.ts";

const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
];

const UNREACHABLE =
  /dns error|failed to lookup address|error sending request|connection refused|network is unreachable|timed out/i;

function currentTarget(): string {
  return Deno.build.target;
}

async function compile(target: string): Promise<"ok" | "skipped"> {
  const output = `dist/mcp-proxy-${target}${target.includes("windows") ? ".exe" : ""}`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--frozen",
      ...PERMISSIONS,
      V8_FLAGS_ARGUMENT,
      "--target",
      target,
      "--output",
      output,
      "main.ts",
    ],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (result.success) {
    Deno.stderr.writeSync(new TextEncoder().encode(`compiled ${output}\n`));
    return "ok";
  }
  if (UNREACHABLE.test(stderr)) return "skipped";
  Deno.stderr.writeSync(new TextEncoder().encode(stderr));
  throw new Error(`deno compile failed for ${target}`);
}

const targets = Deno.args.includes("--all") ? TARGETS : [currentTarget()];
for (const target of targets) {
  if (await compile(target) === "skipped") {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        "skipped: deno compile needs to download the Deno runtime (denort) for " +
          `${target}, and that download cannot be reached from this machine\n`,
      ),
    );
    Deno.exit(0);
  }
}
