/**
 * `deno task publish:check`: `deno publish --dry-run --allow-dirty`, which checks what JSR would get
 * (the `name`, `version` and `exports` of `deno.json`, the files of `publish.include`, slow types)
 * without publishing anything.
 *
 * Where the registry cannot be reached, this prints a `skipped:` line and exits 0, so that checks on
 * closed networks stay green; any other failure fails.
 *
 * @module
 */

const UNREACHABLE =
  /dns error|failed to lookup address|error sending request|connection refused|network is unreachable|timed out/i;

const result = await new Deno.Command(Deno.execPath(), {
  args: ["publish", "--dry-run", "--allow-dirty"],
  stdout: "inherit",
  stderr: "piped",
}).output();
const stderr = new TextDecoder().decode(result.stderr);
Deno.stderr.writeSync(result.stderr);
if (!result.success) {
  if (UNREACHABLE.test(stderr)) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        "skipped: deno publish --dry-run needs the JSR registry, and it cannot be reached from this machine\n",
      ),
    );
    Deno.exit(0);
  }
  Deno.exit(result.code || 1);
}
