/**
 * The environment a stdio server child starts with: a small safe base taken from the proxy's own
 * environment, optionally the whole of it, then the server's own variables on top.
 *
 * @module
 */

/** Operating-system family, which decides the safe base and whether names are case-insensitive. */
export type EnvironmentPlatform = "windows" | "posix";

/** What {@linkcode buildChildEnvironment} needs; every field is required, there are no defaults. */
export interface ChildEnvironmentOptions {
  /** The proxy's own environment, e.g. `Deno.env.toObject()`. */
  parentEnv: Record<string, string>;
  platform: EnvironmentPlatform;
  /** `--pass-environment`: copy the whole `parentEnv`, not only the safe base. */
  passEnvironment: boolean;
  /** The server's own variables (`-e` pairs or the config file's `env`); they win over everything. */
  extra: Record<string, string>;
}

// The same lists as the MCP Python SDK's `DEFAULT_INHERITED_ENV_VARS`, which the Python mcp-proxy uses.
const SAFE_VARIABLES: Record<EnvironmentPlatform, readonly string[]> = {
  posix: ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"],
  windows: [
    "APPDATA",
    "HOMEDRIVE",
    "HOMEPATH",
    "LOCALAPPDATA",
    "PATH",
    "PATHEXT",
    "PROCESSOR_ARCHITECTURE",
    "SYSTEMDRIVE",
    "SYSTEMROOT",
    "TEMP",
    "USERNAME",
    "USERPROFILE",
  ],
};

/** The key two variable names share when the platform treats them as the same variable. */
function identityOf(name: string, platform: EnvironmentPlatform): string {
  return platform === "windows" ? name.toUpperCase() : name;
}

/** Bash exports functions as variables whose value starts with `()`; a child must not inherit them. */
function isShellFunction(value: string): boolean {
  return value.startsWith("()");
}

/**
 * Builds the complete environment for a stdio server child, in layers, later ones winning:
 * the safe base (the variables in cli.md's list that `parentEnv` has, minus shell-function exports),
 * then all of `parentEnv` when `passEnvironment` is set, then `extra`.
 *
 * On Windows, names differing only in case are one variable: the later layer's value and spelling
 * replace the earlier one's, so the result never holds both `Path` and `PATH`.
 *
 * The result is the *whole* environment: spawn with `clearEnv: true`, or the child inherits
 * everything anyway.
 *
 * @example Only the safe base and the server's own variables reach the child
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildChildEnvironment } from "./child_environment.ts";
 *
 * const env = buildChildEnvironment({
 *   parentEnv: { PATH: "/usr/bin", HOME: "/home/ada", AWS_SECRET_ACCESS_KEY: "s3cr3t" },
 *   platform: "posix",
 *   passEnvironment: false,
 *   extra: { API_KEY: "k" },
 * });
 * assert.deepEqual(env, { PATH: "/usr/bin", HOME: "/home/ada", API_KEY: "k" });
 * ```
 */
export function buildChildEnvironment(options: ChildEnvironmentOptions): Record<string, string> {
  const { parentEnv, platform, passEnvironment, extra } = options;
  const safeIdentities = new Set(SAFE_VARIABLES[platform]);
  const variables = new Map<string, [name: string, value: string]>();
  const set = (name: string, value: string) => variables.set(identityOf(name, platform), [name, value]);

  for (const [name, value] of Object.entries(parentEnv)) {
    if (safeIdentities.has(identityOf(name, platform)) && !isShellFunction(value)) set(name, value);
  }
  if (passEnvironment) {
    for (const [name, value] of Object.entries(parentEnv)) set(name, value);
  }
  for (const [name, value] of Object.entries(extra)) set(name, value);

  return Object.fromEntries(variables.values());
}
