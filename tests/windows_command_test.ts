/**
 * `windows_command.ts` on every platform: command lookup with a fake file system, and the cmd.exe
 * command lines checked against a model of how cmd.exe and the C runtime read them (below). On Windows
 * the same command lines also run through the real cmd.exe, and a process tree is ended with taskkill.
 */

import assert from "node:assert/strict";
import {
  resolveWindowsCommand,
  windowsComspec,
  windowsKillTreeCommand,
  windowsSpawnPlan,
} from "../src/windows_command.ts";

const ON_WINDOWS = Deno.build.os === "windows";

/** Arguments that a naive command line breaks: cmd.exe metacharacters, quotes, backslashes, unicode. */
const HARD_ARGUMENTS = [
  "plain",
  "with space",
  "",
  "two  spaces",
  "%PATH%",
  "%CD%",
  "50%",
  "%%",
  "a&b",
  "x^&y",
  "^",
  "caret^",
  "()",
  "[]",
  "%!",
  "^<",
  ">&",
  "|;",
  ", ",
  "!=",
  "a=b",
  "\\*",
  '"f"',
  "?.",
  "=`",
  "'",
  '\\"',
  "bar\\",
  "C:\\dir with space\\",
  "C:\\path\\\\",
  "a\\\\b",
  '"foo|bar>baz"',
  '"(foo|bar>baz|foz)"',
  '--json={"a": 1, "b": "x y"}',
  'say "hi" & exit',
  "André Cruz",
  "日本語",
  "emoji 🙂",
  "tab\there",
];

/** A fake file system that, like Windows', ignores the case of names. */
function filesIgnoringCase(...paths: string[]): (path: string) => boolean {
  const lowercase = new Set(paths.map((path) => path.toLowerCase()));
  return (path) => lowercase.has(path.toLowerCase());
}

// ---------------------------------------------------------------------------------------------------
// A model of the readers of a command line, after the rules documented for cmd.exe (phase 1: percent
// expansion; phase 2: quotes, carets, command separators) and for the Microsoft C runtime.

/** cmd.exe's percent expansion on a command line (not in a batch file): `%NAME%` of a defined variable
 * becomes its value; every other `%` stays. */
function expandPercents(line: string, env: Record<string, string>): string {
  let out = "";
  let i = 0;
  while (i < line.length) {
    if (line[i] === "%") {
      const end = line.indexOf("%", i + 1);
      if (end > i + 1) {
        const name = line.slice(i + 1, end).toUpperCase();
        const key = Object.keys(env).find((candidate) => candidate.toUpperCase() === name);
        if (key !== undefined) {
          out += env[key];
          i = end + 1;
          continue;
        }
      }
    }
    out += line[i++];
  }
  return out;
}

interface CmdCharacter {
  character: string;
  /** Escaped with `^` or inside quotes: not a separator. */
  literal: boolean;
}

/** cmd.exe's phase 2: `"` toggles quoting; outside quotes `^` makes the next character literal and goes
 * away; an unescaped `& | < > ( )` outside quotes would end the command or redirect: an error here. */
function parseCmdLine(line: string): CmdCharacter[] {
  const result: CmdCharacter[] = [];
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const character = line[i];
    if (character === '"') {
      quoted = !quoted;
      result.push({ character, literal: true });
    } else if (quoted) {
      result.push({ character, literal: true });
    } else if (character === "^") {
      i++;
      if (i < line.length) result.push({ character: line[i], literal: true });
    } else if ("&|<>()".includes(character)) {
      throw new Error(`cmd.exe would act on the unescaped ${character} at ${i} of ${line}`);
    } else {
      result.push({ character, literal: false });
    }
  }
  return result;
}

/** The command token cmd.exe runs (up to the first unescaped delimiter) and the rest of the line. */
function splitCommandToken(parsed: CmdCharacter[]): { command: string; tail: string } {
  let start = 0;
  while (start < parsed.length && !parsed[start].literal && " \t".includes(parsed[start].character)) start++;
  let end = start;
  while (end < parsed.length && (parsed[end].literal || !" \t,;=".includes(parsed[end].character))) end++;
  const text = (from: number, to: number) => parsed.slice(from, to).map((c) => c.character).join("");
  return { command: text(start, end), tail: text(end, parsed.length) };
}

/** How a program's C runtime splits its command line into argv (the 2008 and later rules). */
function parseCRuntime(line: string): string[] {
  const argv: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (i >= line.length) return argv;
    let argument = "";
    let quoted = false;
    while (i < line.length && (quoted || (line[i] !== " " && line[i] !== "\t"))) {
      if (line[i] === "\\") {
        let backslashes = 0;
        while (line[i] === "\\") {
          backslashes++;
          i++;
        }
        if (line[i] === '"') {
          argument += "\\".repeat(Math.floor(backslashes / 2));
          if (backslashes % 2 === 1) {
            argument += '"';
            i++;
          }
        } else {
          argument += "\\".repeat(backslashes);
        }
      } else if (line[i] === '"') {
        if (quoted && line[i + 1] === '"') {
          argument += '"';
          i += 2;
        } else {
          quoted = !quoted;
          i++;
        }
      } else {
        argument += line[i++];
      }
    }
    argv.push(argument);
  }
}

const MODEL_ENV = { PATH: "C:\\Windows", CD: "C:\\work", ComSpec: "C:\\Windows\\system32\\cmd.exe" };

/** What cmd.exe runs for a plan from {@linkcode windowsSpawnPlan}, and the batch file's `%*`. */
function runThroughCmd(plan: { args: string[] }): { command: string; batchArguments: string } {
  assert.deepEqual(plan.args.slice(0, 3), ["/d", "/s", "/c"]);
  assert.equal(plan.args.length, 4);
  const quotedLine = plan.args[3];
  assert.ok(quotedLine.startsWith('"') && quotedLine.endsWith('"'), quotedLine);
  // `/s /c`: the first and the last quote go, the rest is the command line.
  const { command, tail } = splitCommandToken(
    parseCmdLine(expandPercents(quotedLine.slice(1, -1), MODEL_ENV)),
  );
  return { command, batchArguments: tail.replace(/^[ \t,;=]+/, "") };
}

/** argv of the program that a batch file starts with `"program" %*` (npm's cmd-shims do this). */
function forwardedArguments(batchArguments: string): string[] {
  // %* is replaced once, and the line is then parsed by cmd.exe again before the program gets it.
  const batchLine = `"C:\\nodejs\\node.exe" "C:\\app\\cli.js" ${batchArguments}`;
  const programLine = parseCmdLine(batchLine).map((c) => c.character).join("");
  return parseCRuntime(programLine).slice(2);
}

// ---------------------------------------------------------------------------------------------------

Deno.test("model: the C runtime parser and cmd.exe parser read known lines as documented", () => {
  assert.deepEqual(parseCRuntime(String.raw`a "b c" d\\"e f" g\"h ""`), ["a", "b c", "d\\e f", 'g"h', ""]);
  assert.deepEqual(parseCRuntime(String.raw`"a""b" c\\\\ "d\\"`), ['a"b', "c\\\\\\\\", "d\\"]);
  assert.equal(parseCmdLine('^"a^&b^" "c^d"').map((c) => c.character).join(""), '"a&b" "c^d"');
  assert.throws(() => parseCmdLine("a & b"), /unescaped &/);
  assert.equal(expandPercents("%path% %NOPE% 50%", MODEL_ENV), "C:\\Windows %NOPE% 50%");
  assert.equal(expandPercents("^%PATH^%", MODEL_ENV), "^%PATH^%");
});

Deno.test("resolveWindowsCommand() tries PATHEXT in each PATH directory, never the extensionless file", () => {
  const files = new Set(["C:\\nodejs\\npx", "C:\\nodejs\\npx.CMD", "C:\\nodejs\\npx.ps1"]);
  const env = { PATH: "C:\\Windows;C:\\nodejs", PATHEXT: ".COM;.EXE;.BAT;.CMD" };
  assert.equal(resolveWindowsCommand("npx", env, (path) => files.has(path)), "C:\\nodejs\\npx.CMD");
});

Deno.test("resolveWindowsCommand() takes the first PATH directory, and PATHEXT's order within it", () => {
  const exists = filesIgnoringCase("C:\\a\\tool.cmd", "C:\\b\\tool.exe", "C:\\a\\tool.exe");
  const env = { PATH: "C:\\a;C:\\b", PATHEXT: ".EXE;.CMD" };
  assert.equal(resolveWindowsCommand("tool", env, exists), "C:\\a\\tool.EXE");
  assert.equal(resolveWindowsCommand("tool", { ...env, PATHEXT: ".CMD;.EXE" }, exists), "C:\\a\\tool.CMD");
  assert.equal(resolveWindowsCommand("tool", { ...env, PATH: "C:\\b;C:\\a" }, exists), "C:\\b\\tool.EXE");
});

Deno.test("resolveWindowsCommand() reads PATH and PATHEXT whatever their case, and defaults PATHEXT", () => {
  const files = new Set(["D:\\bin\\uvx.EXE", "D:\\bin\\server.BAT"]);
  const exists = (path: string) => files.has(path);
  assert.equal(
    resolveWindowsCommand("uvx", { Path: "D:\\bin", PathExt: ".EXE" }, exists),
    "D:\\bin\\uvx.EXE",
  );
  assert.equal(resolveWindowsCommand("uvx", { path: "D:\\bin" }, exists), "D:\\bin\\uvx.EXE");
  assert.equal(
    resolveWindowsCommand("server", { path: "D:\\bin", PATHEXT: " ; " }, exists),
    "D:\\bin\\server.BAT",
  );
});

Deno.test("resolveWindowsCommand() skips empty PATH entries and unquotes quoted ones", () => {
  const files = new Set(["C:\\Program Files\\nodejs\\npx.CMD", "C:\\trailing\\tool.EXE"]);
  const exists = (path: string) => files.has(path);
  const env = { PATH: ';;"C:\\Program Files\\nodejs";C:\\trailing\\;', PATHEXT: ".EXE;.CMD" };
  assert.equal(resolveWindowsCommand("npx", env, exists), "C:\\Program Files\\nodejs\\npx.CMD");
  assert.equal(resolveWindowsCommand("tool", env, exists), "C:\\trailing\\tool.EXE");
});

Deno.test("resolveWindowsCommand() takes a name with an extension as it is, on PATH", () => {
  const files = new Set(["C:\\bin\\uvx.exe", "C:\\bin\\server.js"]);
  const env = { PATH: "C:\\bin", PATHEXT: ".COM;.EXE;.BAT;.CMD" };
  const exists = (path: string) => files.has(path);
  assert.equal(resolveWindowsCommand("uvx.exe", env, exists), "C:\\bin\\uvx.exe");
  assert.equal(resolveWindowsCommand("server.js", env, exists), "C:\\bin\\server.js");
  assert.equal(resolveWindowsCommand("node.exe", env, exists), undefined);
});

Deno.test("resolveWindowsCommand() takes a path as it is, or with a PATHEXT extension, and not on PATH", () => {
  const files = new Set([
    "C:\\tools\\server.cmd",
    "C:\\tools\\other.EXE",
    ".\\bin\\local.CMD",
    "C:\\bin\\x.EXE",
  ]);
  const env = { PATH: "C:\\bin", PATHEXT: ".EXE;.CMD" };
  const exists = (path: string) => files.has(path);
  assert.equal(resolveWindowsCommand("C:\\tools\\server.cmd", env, exists), "C:\\tools\\server.cmd");
  assert.equal(resolveWindowsCommand("C:\\tools\\other", env, exists), "C:\\tools\\other.EXE");
  assert.equal(resolveWindowsCommand(".\\bin\\local", env, exists), ".\\bin\\local.CMD");
  assert.equal(resolveWindowsCommand("C:\\tools\\missing.cmd", env, exists), undefined);
  assert.equal(resolveWindowsCommand("sub\\x", env, exists), undefined, "a path is not looked up on PATH");
  const forward = new Set(["C:/tools/server.CMD"]);
  assert.equal(
    resolveWindowsCommand("C:/tools/server", env, (path) => forward.has(path)),
    "C:/tools/server.CMD",
  );
});

Deno.test("resolveWindowsCommand() returns undefined for an unknown or empty command, or without PATH", () => {
  const exists = () => false;
  assert.equal(resolveWindowsCommand("nope", { PATH: "C:\\bin" }, exists), undefined);
  assert.equal(resolveWindowsCommand("", { PATH: "C:\\bin" }, () => true), undefined);
  assert.equal(resolveWindowsCommand("npx", {}, () => true), undefined);
});

Deno.test("windowsSpawnPlan() starts an .exe (or anything but a batch file) directly", () => {
  const args = ["--flag", "a b", 'q"uote'];
  const plan = windowsSpawnPlan("C:\\bin\\uvx.exe", args);
  assert.deepEqual(plan, { command: "C:\\bin\\uvx.exe", args });
  assert.notEqual(plan.args, args, "the plan has its own copy of the arguments");
  assert.equal("windowsRawArguments" in plan, false);
  assert.deepEqual(windowsSpawnPlan("C:\\bin\\tool.COM", []), { command: "C:\\bin\\tool.COM", args: [] });
});

Deno.test("windowsSpawnPlan() runs a batch file through cmd.exe /d /s /c with raw arguments", () => {
  for (const file of ["C:\\srv\\run.bat", "C:\\srv\\RUN.CMD", "C:\\srv\\run.Cmd"]) {
    const plan = windowsSpawnPlan(file, ["x"], "C:\\Windows\\system32\\cmd.exe");
    assert.equal(plan.command, "C:\\Windows\\system32\\cmd.exe");
    assert.deepEqual(plan.args, ["/d", "/s", "/c", `"${file} x"`]);
    assert.equal(plan.windowsRawArguments, true);
  }
  assert.equal(windowsSpawnPlan("C:\\srv\\run.bat", []).command, "cmd.exe");
  assert.deepEqual(windowsSpawnPlan("C:\\srv\\run.bat", []).args, ["/d", "/s", "/c", '"C:\\srv\\run.bat"']);
});

Deno.test("windowsSpawnPlan() quotes and escapes batch arguments: exact command lines", () => {
  const line = (file: string, args: string[]) => windowsSpawnPlan(file, args).args[3];
  assert.equal(
    line("C:\\srv\\run.bat", ["a b", "", "50%", "x&y", 'say "hi"', "C:\\dir\\", "-y", "pkg@1.2.3"]),
    String.raw`"C:\srv\run.bat ^"a^ b^" ^"^" ^"50^%^" ^"x^&y^" ^"say^ \^"hi\^"^" ^"C:\dir\\^" -y pkg@1.2.3"`,
  );
  assert.equal(
    line("C:\\srv\\run.bat", ["%PATH%", "!x!", "^"]),
    '"C:\\srv\\run.bat ^"^%PATH^%^" ^"^!x^!^" ^"^^^""',
  );
  assert.equal(
    line("C:\\Program Files (x86)\\nodejs\\npx.cmd", ["-y", "a&b"]),
    String.raw`"C:\Program^ Files^ ^(x86^)\nodejs\npx.cmd -y ^^^"a^^^&b^^^""`,
  );
});

Deno.test("windowsSpawnPlan() command lines: cmd.exe runs the file and %* reads back every argument", () => {
  for (const file of ["C:\\srv\\run.bat", "C:\\Program Files (x86)\\My App\\start server.cmd"]) {
    const { command, batchArguments } = runThroughCmd(windowsSpawnPlan(file, HARD_ARGUMENTS));
    assert.equal(command, file);
    assert.deepEqual(parseCRuntime(batchArguments), HARD_ARGUMENTS);
  }
});

Deno.test("windowsSpawnPlan() command lines: a shim's program gets every argument through %*", () => {
  const shims = [
    "C:\\work\\node_modules\\.bin\\server-everything.cmd",
    "C:\\Users\\Ada Lovelace\\AppData\\Roaming\\npm\\mcp-server-fetch.cmd",
    "C:\\Program Files\\nodejs\\npx.cmd",
    "C:\\Program Files\\nodejs\\NPM.CMD",
    "C:\\Users\\ada\\AppData\\Local\\pnpm\\pnpm.cmd",
    "C:\\tools\\yarn.cmd",
  ];
  for (const shim of shims) {
    const { command, batchArguments } = runThroughCmd(windowsSpawnPlan(shim, HARD_ARGUMENTS));
    assert.equal(command, shim);
    assert.deepEqual(forwardedArguments(batchArguments), HARD_ARGUMENTS, shim);
  }
});

Deno.test("windowsSpawnPlan() command lines: other batch files forward quote-free arguments through %* too", () => {
  const quoteFree = HARD_ARGUMENTS.filter((argument) => !argument.includes('"'));
  const { batchArguments } = runThroughCmd(windowsSpawnPlan("C:\\srv\\start.cmd", quoteFree));
  assert.deepEqual(forwardedArguments(batchArguments), quoteFree);
});

Deno.test("windowsSpawnPlan() leaves plain words unquoted, so that a batch file's %1 compares as typed", () => {
  const { batchArguments } = runThroughCmd(
    windowsSpawnPlan("C:\\srv\\run.bat", ["--version", "-y", "a/b.c"]),
  );
  assert.equal(batchArguments, "--version -y a/b.c");
});

Deno.test("windowsSpawnPlan() escapes a file name with metacharacters, spaces and %VAR%", () => {
  for (const file of ["C:\\fixtures\\()%!^&;, .bat", "C:\\fixtures\\%CD%.bat", "C:\\a=b\\run.cmd"]) {
    assert.equal(runThroughCmd(windowsSpawnPlan(file, ["x"])).command, file);
  }
});

Deno.test("windowsSpawnPlan() refuses line breaks and NUL in a batch file's arguments", () => {
  for (const bad of ["a\nb", "a\r\nb", "a\rb", "a\0b"]) {
    assert.throws(
      () => windowsSpawnPlan("C:\\srv\\run.cmd", ["ok", bad]),
      (error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^Cannot pass argument 2 \(".*"\) to the batch file C:\\srv\\run\.cmd: /);
        return true;
      },
    );
  }
  assert.deepEqual(
    windowsSpawnPlan("C:\\bin\\tool.exe", ["a\nb"]).args,
    ["a\nb"],
    "an .exe gets them as they are",
  );
});

Deno.test("windowsComspec() prefers ComSpec, then SystemRoot, then plain cmd.exe", () => {
  assert.equal(windowsComspec({ COMSPEC: "D:\\cmd.exe", SystemRoot: "C:\\Windows" }), "D:\\cmd.exe");
  assert.equal(windowsComspec({ SYSTEMROOT: "C:\\Windows" }), "C:\\Windows\\System32\\cmd.exe");
  assert.equal(windowsComspec({}), "cmd.exe");
});

Deno.test("windowsKillTreeCommand() is taskkill /T /F /PID, for positive integer pids only", () => {
  assert.deepEqual(windowsKillTreeCommand(4242), { command: "taskkill", args: ["/T", "/F", "/PID", "4242"] });
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => windowsKillTreeCommand(bad), RangeError);
  }
});

// ---------------------------------------------------------------------------------------------------
// The real thing, on Windows only.

/** A temporary directory with `print_args.ts` and batch files that run it with `%*`. */
async function withBatchFixtures(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "windows_command_test_" });
  try {
    await Deno.mkdir(`${dir}\\node_modules\\.bin`, { recursive: true });
    await Deno.writeTextFile(`${dir}\\print_args.ts`, "console.log(JSON.stringify(Deno.args));\n");
    await Deno.writeTextFile(
      `${dir}\\sleeper.ts`,
      "console.log(Deno.pid);\nawait new Promise((resolve) => setTimeout(resolve, 60_000));\n",
    );
    const run = (script: string) =>
      `@"%DENO_EXE%" run --quiet --no-config --no-lock "${dir}\\${script}" %*\r\n`;
    await Deno.writeTextFile(`${dir}\\node_modules\\.bin\\print-args.cmd`, run("print_args.ts"));
    await Deno.writeTextFile(`${dir}\\print-args.cmd`, run("print_args.ts"));
    await Deno.writeTextFile(`${dir}\\sleeper.cmd`, run("sleeper.ts"));
    await test(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function runPlan(plan: ReturnType<typeof windowsSpawnPlan>): Promise<string[]> {
  const output = await new Deno.Command(plan.command, {
    args: plan.args,
    windowsRawArguments: plan.windowsRawArguments,
    env: { DENO_EXE: Deno.execPath() },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `exit code ${output.code}: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

Deno.test({
  name: "windows: an npm-style shim found through PATH and PATHEXT gets every argument through cmd.exe",
  ignore: !ON_WINDOWS,
  async fn() {
    await withBatchFixtures(async (dir) => {
      const env = { Path: `${dir}\\node_modules\\.bin`, PATHEXT: ".COM;.EXE;.BAT;.CMD" };
      const resolved = resolveWindowsCommand("print-args", env, isFile);
      assert.equal(resolved?.toLowerCase(), `${dir}\\node_modules\\.bin\\print-args.cmd`.toLowerCase());
      const args = HARD_ARGUMENTS.filter((argument) => !argument.includes("\t"));
      const comspec = windowsComspec(Deno.env.toObject());
      assert.deepEqual(await runPlan(windowsSpawnPlan(resolved!, args, comspec)), args);
    });
  },
});

Deno.test({
  name: "windows: another batch file gets quote-free arguments through cmd.exe",
  ignore: !ON_WINDOWS,
  async fn() {
    await withBatchFixtures(async (dir) => {
      const quoteFree = HARD_ARGUMENTS.filter((argument) =>
        !argument.includes('"') && !argument.includes("\t")
      );
      const comspec = windowsComspec(Deno.env.toObject());
      assert.deepEqual(
        await runPlan(windowsSpawnPlan(`${dir}\\print-args.cmd`, quoteFree, comspec)),
        quoteFree,
      );
    });
  },
});

Deno.test({
  name: "windows: taskkill /T /F ends cmd.exe and the server it started",
  ignore: !ON_WINDOWS,
  async fn() {
    await withBatchFixtures(async (dir) => {
      const plan = windowsSpawnPlan(`${dir}\\sleeper.cmd`, [], windowsComspec(Deno.env.toObject()));
      const child = new Deno.Command(plan.command, {
        args: plan.args,
        windowsRawArguments: plan.windowsRawArguments,
        env: { DENO_EXE: Deno.execPath() },
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) break;
        text += value;
      }
      const grandchild = Number.parseInt(text, 10);
      assert.ok(grandchild > 0, `the server did not print its pid: ${JSON.stringify(text)}`);

      const kill = windowsKillTreeCommand(child.pid);
      const killed = await new Deno.Command(kill.command, { args: kill.args, stdout: "null", stderr: "null" })
        .output();
      assert.ok(killed.success, `taskkill exited with ${killed.code}`);
      assert.equal((await child.status).success, false);
      while (!(await lines.read()).done) {
        // The pipe ends once no process of the tree holds it.
      }

      const deadline = Date.now() + 5000;
      for (;;) {
        const list = await new Deno.Command("tasklist", {
          args: ["/NH", "/FI", `PID eq ${grandchild}`],
          stdout: "piped",
          stderr: "null",
        }).output();
        if (!new TextDecoder().decode(list.stdout).includes(` ${grandchild} `)) break;
        assert.ok(Date.now() < deadline, `the server (pid ${grandchild}) is still running`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
  },
});
