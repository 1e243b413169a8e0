/**
 * `install.sh` run by `sh` against a local releases server (127.0.0.1) that serves stand-in assets: a
 * small shell script as the "binary" and a SHA256SUMS computed here. POSIX only: on Windows the script
 * refuses to install, and CI does not run this file there.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../install.sh", import.meta.url));
const STAND_IN_BINARY = new TextEncoder().encode("#!/bin/sh\necho 'mcp-proxy 0.0.0-test'\n");
const ON_WINDOWS = Deno.build.os === "windows";

type Bytes = Uint8Array<ArrayBuffer>;

const ALL_TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
];

/** The Deno target install.sh should pick on this machine. */
function thisTarget(): string {
  const system = Deno.build.os === "darwin" ? "apple-darwin" : "unknown-linux-gnu";
  return `${Deno.build.arch}-${system}`;
}

async function sha256Hex(bytes: Bytes): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A SHA256SUMS in sha256sum's format with a line for each of `assets`. */
async function sha256Sums(assets: Record<string, Bytes>): Promise<string> {
  const lines = await Promise.all(
    Object.entries(assets).map(async ([name, bytes]) => `${await sha256Hex(bytes)}  ${name}\n`),
  );
  return lines.join("");
}

/** The stand-in binary under every target's asset name. */
function standInAssets(): Record<string, Bytes> {
  return Object.fromEntries(ALL_TARGETS.map((target) => [`mcp-proxy-${target}`, STAND_IN_BINARY]));
}

/** Serves `files` (URL path → content) on 127.0.0.1, 404 for anything else, and records request paths. */
class ReleaseServer implements AsyncDisposable {
  readonly requests: string[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor(files: Record<string, Bytes | string>) {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const path = new URL(request.url).pathname;
      this.requests.push(path);
      const body = files[path];
      return body === undefined ? new Response("Not Found", { status: 404 }) : new Response(body);
    });
  }

  /** The value for MCP_PROXY_DOWNLOAD_BASE. */
  get base(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/releases`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** A scratch directory with an empty home in it, removed on dispose. */
class Scratch implements AsyncDisposable {
  private constructor(readonly root: string) {}

  static async create(): Promise<Scratch> {
    const scratch = new Scratch(await Deno.makeTempDir({ prefix: "install_sh_test_" }));
    await Deno.mkdir(scratch.home);
    return scratch;
  }

  get home(): string {
    return `${this.root}/home`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.root, { recursive: true });
  }
}

/** sh by absolute path: the installer's PATH may lack its directory. */
const SH = ON_WINDOWS ? "sh" : findOnPath("sh") ?? "/bin/sh";

interface InstallResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs install.sh with only `env` (plus PATH) in its environment: as `sh install.sh`, or with `piped`
 * the way `curl … | sh` does, the script on sh's stdin.
 */
async function runInstaller(env: Record<string, string>, piped = false): Promise<InstallResult> {
  const command = new Deno.Command(SH, {
    args: piped ? [] : [SCRIPT],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    clearEnv: true,
    stdin: piped ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  if (piped) {
    const writer = child.stdin.getWriter();
    await writer.write(await Deno.readFile(SCRIPT));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

function assertFailed(result: InstallResult, message: RegExp): void {
  assert.equal(result.code, 1, `expected exit status 1\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  assert.match(result.stderr, message);
}

function assertSucceeded(result: InstallResult): void {
  assert.equal(result.code, 0, `expected success\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
}

/** The Claude Desktop snippet: the lines from a lone `{` to a lone `}`, parsed. */
function claudeDesktopSnippet(
  stdout: string,
): { mcpServers: Record<string, { command: string; args: string[] }> } {
  const lines = stdout.split("\n");
  const start = lines.indexOf("{");
  const end = lines.indexOf("}", start);
  assert.ok(start >= 0 && end > start, `no JSON snippet in:\n${stdout}`);
  return JSON.parse(lines.slice(start, end + 1).join("\n"));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function runInstalled(path: string): Promise<string> {
  const output = await new Deno.Command(path, { stdout: "piped", stderr: "inherit" }).output();
  assert.ok(output.success, `${path} failed`);
  return new TextDecoder().decode(output.stdout).trim();
}

/** Where the executable `name` is on PATH, or undefined. */
function findOnPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

async function latestRelease(assets: Record<string, Bytes>): Promise<Record<string, Bytes | string>> {
  const files: Record<string, Bytes | string> = {
    "/releases/latest/download/SHA256SUMS": await sha256Sums(assets),
  };
  for (const [name, bytes] of Object.entries(assets)) files[`/releases/latest/download/${name}`] = bytes;
  return files;
}

Deno.test({
  name: "install.sh piped into sh installs the latest release for this platform and prints how to use it",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    await using server = new ReleaseServer(await latestRelease(standInAssets()));
    const installDir = `${scratch.root}/opt/mcp bin`;
    const result = await runInstaller({
      HOME: scratch.home,
      MCP_PROXY_DOWNLOAD_BASE: server.base,
      MCP_PROXY_INSTALL_DIR: installDir,
    }, true);
    assertSucceeded(result);

    const asset = `mcp-proxy-${thisTarget()}`;
    assert.deepEqual(server.requests, [
      `/releases/latest/download/${asset}`,
      "/releases/latest/download/SHA256SUMS",
    ]);
    const installed = `${installDir}/mcp-proxy`;
    assert.equal((await Deno.stat(installed)).mode! & 0o777, 0o755);
    assert.equal(await runInstalled(installed), "mcp-proxy 0.0.0-test");
    const left = await Array.fromAsync(Deno.readDir(installDir), (entry) => entry.name);
    assert.deepEqual(left, ["mcp-proxy"], "nothing but mcp-proxy is left in the install directory");

    assert.match(result.stdout, new RegExp(`mcp-proxy is installed: ${RegExp.escape(installed)}\n`));
    assert.match(result.stdout, /mcp-proxy 0\.0\.0-test/);
    assert.ok(result.stdout.includes(`is not on your PATH`), result.stdout);
    assert.ok(result.stdout.includes(`export PATH="${installDir}:$PATH"`), result.stdout);
    const snippet = claudeDesktopSnippet(result.stdout);
    const [server0] = Object.values(snippet.mcpServers);
    assert.equal(server0.command, installed);
    assert.match(server0.args[0], /^http:\/\/.+\/sse$/);
    assert.match(result.stderr, /checksum verified/);
  },
});

Deno.test({
  name: "install.sh installs into ~/.local/bin by default and gives no PATH hint when it is on PATH",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    await using server = new ReleaseServer(await latestRelease(standInAssets()));
    const binDir = `${scratch.home}/.local/bin`;
    const result = await runInstaller({
      HOME: scratch.home,
      MCP_PROXY_DOWNLOAD_BASE: server.base,
      PATH: `${binDir}:${Deno.env.get("PATH")}`,
    });
    assertSucceeded(result);
    assert.equal(await runInstalled(`${binDir}/mcp-proxy`), "mcp-proxy 0.0.0-test");
    assert.ok(!result.stdout.includes("is not on your PATH"), result.stdout);
    assert.equal(
      claudeDesktopSnippet(result.stdout).mcpServers["remote-example"].command,
      `${binDir}/mcp-proxy`,
    );
  },
});

Deno.test({
  name: "install.sh with MCP_PROXY_VERSION downloads from download/v<version>, with or without the v",
  ignore: ON_WINDOWS,
  async fn() {
    const asset = `mcp-proxy-${thisTarget()}`;
    const files = {
      [`/releases/download/v1.2.3/${asset}`]: STAND_IN_BINARY,
      "/releases/download/v1.2.3/SHA256SUMS": await sha256Sums({ [asset]: STAND_IN_BINARY }),
    };
    for (const version of ["1.2.3", "v1.2.3"]) {
      await using scratch = await Scratch.create();
      await using server = new ReleaseServer(files);
      const result = await runInstaller({
        HOME: scratch.home,
        MCP_PROXY_DOWNLOAD_BASE: `${server.base}/`,
        MCP_PROXY_VERSION: version,
      });
      assertSucceeded(result);
      assert.deepEqual(server.requests, Object.keys(files));
      assert.match(result.stderr, /version 1\.2\.3/);
      assert.ok(await exists(`${scratch.home}/.local/bin/mcp-proxy`));
    }
  },
});

Deno.test({
  name: "install.sh maps each OS and CPU name to its Deno target",
  ignore: ON_WINDOWS,
  async fn() {
    const cases: [string, string, string][] = [
      ["Linux", "x86_64", "x86_64-unknown-linux-gnu"],
      ["Linux", "amd64", "x86_64-unknown-linux-gnu"],
      ["Linux", "aarch64", "aarch64-unknown-linux-gnu"],
      ["Linux", "arm64", "aarch64-unknown-linux-gnu"],
      ["Darwin", "x86_64", "x86_64-apple-darwin"],
      ["Darwin", "arm64", "aarch64-apple-darwin"],
      ["Darwin", "aarch64", "aarch64-apple-darwin"],
    ];
    await using server = new ReleaseServer(await latestRelease(standInAssets()));
    for (const [os, arch, target] of cases) {
      await using scratch = await Scratch.create();
      server.requests.length = 0;
      const result = await runInstaller({
        HOME: scratch.home,
        MCP_PROXY_DOWNLOAD_BASE: server.base,
        MCP_PROXY_OS: os,
        MCP_PROXY_ARCH: arch,
      });
      assertSucceeded(result);
      assert.equal(server.requests[0], `/releases/latest/download/mcp-proxy-${target}`, `${os} ${arch}`);
    }
  },
});

Deno.test({
  name: "install.sh refuses a download whose checksum does not match, and leaves the old binary alone",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    const asset = `mcp-proxy-${thisTarget()}`;
    const files = await latestRelease(standInAssets());
    files["/releases/latest/download/SHA256SUMS"] = await sha256Sums({
      ...standInAssets(),
      [asset]: new TextEncoder().encode("something else"),
    });
    await using server = new ReleaseServer(files);
    const installDir = `${scratch.root}/bin`;
    await Deno.mkdir(installDir);
    await Deno.writeTextFile(`${installDir}/mcp-proxy`, "old");

    const result = await runInstaller({
      HOME: scratch.home,
      MCP_PROXY_DOWNLOAD_BASE: server.base,
      MCP_PROXY_INSTALL_DIR: installDir,
    });
    assertFailed(result, new RegExp(`checksum mismatch for ${asset}.*refusing to install`, "s"));
    assert.equal(await Deno.readTextFile(`${installDir}/mcp-proxy`), "old");
    const left = await Array.fromAsync(Deno.readDir(installDir), (entry) => entry.name);
    assert.deepEqual(left, ["mcp-proxy"]);
    assert.doesNotMatch(result.stdout, /installed/);
  },
});

Deno.test({
  name: "install.sh refuses to install when SHA256SUMS has no line for the asset",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    const asset = `mcp-proxy-${thisTarget()}`;
    const others = Object.fromEntries(Object.entries(standInAssets()).filter(([name]) => name !== asset));
    const files = await latestRelease(standInAssets());
    files["/releases/latest/download/SHA256SUMS"] = await sha256Sums(others);
    await using server = new ReleaseServer(files);
    const result = await runInstaller({ HOME: scratch.home, MCP_PROXY_DOWNLOAD_BASE: server.base });
    assertFailed(result, new RegExp(`SHA256SUMS of the latest release has no line for ${asset}`));
    assert.equal(await exists(`${scratch.home}/.local/bin/mcp-proxy`), false);
  },
});

Deno.test({
  name: "install.sh names the URL and the version when the release does not exist (404)",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    await using server = new ReleaseServer(await latestRelease(standInAssets()));
    const result = await runInstaller({
      HOME: scratch.home,
      MCP_PROXY_DOWNLOAD_BASE: server.base,
      MCP_PROXY_VERSION: "v9.9.9",
    });
    const url = `${server.base}/download/v9.9.9/mcp-proxy-${thisTarget()}`;
    assertFailed(result, new RegExp(`cannot download ${RegExp.escape(url)}: version 9\\.9\\.9`));
    assert.match(result.stderr, /does not exist or has no asset/);
    assert.equal(await exists(`${scratch.home}/.local/bin`), false);
  },
});

Deno.test({
  name: "install.sh rejects an MCP_PROXY_VERSION that is not a version",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    await using server = new ReleaseServer({});
    for (const version of ["latest", "1.2.3/../../x", "v"]) {
      const result = await runInstaller({
        HOME: scratch.home,
        MCP_PROXY_DOWNLOAD_BASE: server.base,
        MCP_PROXY_VERSION: version,
      });
      assertFailed(result, /MCP_PROXY_VERSION must be a version like 1\.2\.3 or v1\.2\.3/);
    }
    assert.deepEqual(server.requests, []);
  },
});

Deno.test({
  name: "install.sh stops with a clear error on an unsupported OS or CPU, before downloading",
  ignore: ON_WINDOWS,
  async fn() {
    await using scratch = await Scratch.create();
    await using server = new ReleaseServer(await latestRelease(standInAssets()));
    const env = { HOME: scratch.home, MCP_PROXY_DOWNLOAD_BASE: server.base };
    assertFailed(
      await runInstaller({ ...env, MCP_PROXY_OS: "FreeBSD" }),
      /unsupported operating system: FreeBSD \(mcp-proxy binaries exist for Linux and Darwin/,
    );
    assertFailed(
      await runInstaller({ ...env, MCP_PROXY_OS: "MINGW64_NT-10.0-19045" }),
      /does not install on Windows.*mcp-proxy-x86_64-pc-windows-msvc\.exe/,
    );
    assertFailed(
      await runInstaller({ ...env, MCP_PROXY_OS: "Linux", MCP_PROXY_ARCH: "riscv64" }),
      /unsupported CPU architecture: riscv64 \(mcp-proxy binaries exist for x86_64 \(amd64\) and aarch64/,
    );
    assert.deepEqual(server.requests, []);
    assert.equal(await exists(`${scratch.home}/.local`), false);
  },
});

const WGET = ON_WINDOWS ? undefined : findOnPath("wget");

Deno.test({
  name: "install.sh uses wget when curl is missing, and needs only common tools",
  ignore: WGET === undefined,
  async fn() {
    await using scratch = await Scratch.create();
    await using server = new ReleaseServer(await latestRelease(standInAssets()));
    // A PATH with exactly the tools install.sh may use, curl left out.
    const tools = `${scratch.root}/tools`;
    await Deno.mkdir(tools);
    const hasher = findOnPath("sha256sum") ? "sha256sum" : "shasum";
    for (
      const name of ["awk", "chmod", "cp", "mkdir", "mktemp", "mv", "rm", "sed", "uname", "wget", hasher]
    ) {
      const path = findOnPath(name);
      assert.ok(path, `${name} is not installed`);
      await Deno.symlink(path, `${tools}/${name}`);
    }
    const result = await runInstaller({
      HOME: scratch.home,
      MCP_PROXY_DOWNLOAD_BASE: server.base,
      PATH: tools,
    });
    assertSucceeded(result);
    assert.equal(await runInstalled(`${scratch.home}/.local/bin/mcp-proxy`), "mcp-proxy 0.0.0-test");
    assert.equal(server.requests.length, 2);
  },
});

Deno.test({
  name: "install.sh: shellcheck reports nothing",
  ignore: ON_WINDOWS,
  async fn() {
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command("shellcheck", { args: [SCRIPT], stdout: "piped", stderr: "piped" })
        .output();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(
          "shellcheck is not installed: install it (Debian/Ubuntu: apt-get install -y shellcheck; " +
            "macOS: brew install shellcheck) to check install.sh",
        );
      }
      throw error;
    }
    const report = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(report, "", report);
    assert.ok(output.success);
  },
});
