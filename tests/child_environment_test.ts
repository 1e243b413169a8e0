import assert from "node:assert/strict";
import { buildChildEnvironment, type ChildEnvironmentOptions } from "../src/child_environment.ts";

const POSIX_PARENT: Record<string, string> = {
  HOME: "/home/ada",
  LOGNAME: "ada",
  PATH: "/usr/bin:/bin",
  SHELL: "/bin/bash",
  TERM: "xterm-256color",
  USER: "ada",
  AWS_SECRET_ACCESS_KEY: "s3cr3t",
  LANG: "en_US.UTF-8",
};

function build(overrides: Partial<ChildEnvironmentOptions>): Record<string, string> {
  return buildChildEnvironment({
    parentEnv: POSIX_PARENT,
    platform: "posix",
    passEnvironment: false,
    extra: {},
    ...overrides,
  });
}

Deno.test("buildChildEnvironment() keeps only the POSIX safe variables by default", () => {
  assert.deepEqual(build({}), {
    HOME: "/home/ada",
    LOGNAME: "ada",
    PATH: "/usr/bin:/bin",
    SHELL: "/bin/bash",
    TERM: "xterm-256color",
    USER: "ada",
  });
});

Deno.test("buildChildEnvironment() leaves out safe variables the parent does not have", () => {
  assert.deepEqual(build({ parentEnv: { PATH: "/bin", EDITOR: "vi" } }), { PATH: "/bin" });
});

Deno.test("buildChildEnvironment() matches POSIX names case-sensitively", () => {
  assert.deepEqual(build({ parentEnv: { Path: "/bin", home: "/h", PATH: "/usr/bin" } }), {
    PATH: "/usr/bin",
  });
});

Deno.test("buildChildEnvironment() keeps only the Windows safe variables on Windows", () => {
  const parentEnv = {
    APPDATA: "C:\\Users\\ada\\AppData\\Roaming",
    HOMEDRIVE: "C:",
    HOMEPATH: "\\Users\\ada",
    LOCALAPPDATA: "C:\\Users\\ada\\AppData\\Local",
    PATH: "C:\\Windows",
    PATHEXT: ".COM;.EXE",
    PROCESSOR_ARCHITECTURE: "AMD64",
    SYSTEMDRIVE: "C:",
    SYSTEMROOT: "C:\\Windows",
    TEMP: "C:\\Temp",
    USERNAME: "ada",
    USERPROFILE: "C:\\Users\\ada",
    HOME: "C:\\Users\\ada",
    GITHUB_TOKEN: "ghp_x",
  };
  const { HOME: _home, GITHUB_TOKEN: _token, ...expected } = parentEnv;
  assert.deepEqual(build({ parentEnv, platform: "windows" }), expected);
});

Deno.test("buildChildEnvironment() matches Windows names case-insensitively, keeping their spelling", () => {
  const parentEnv = { Path: "C:\\Windows", SystemRoot: "C:\\Windows", temp: "C:\\Temp", Secret: "x" };
  assert.deepEqual(build({ parentEnv, platform: "windows" }), {
    Path: "C:\\Windows",
    SystemRoot: "C:\\Windows",
    temp: "C:\\Temp",
  });
});

Deno.test("buildChildEnvironment() skips safe variables holding exported shell functions", () => {
  const parentEnv = { PATH: "/bin", TERM: "() {  echo pwned\n}", HOME: " () not a function" };
  assert.deepEqual(build({ parentEnv }), { PATH: "/bin", HOME: " () not a function" });
});

Deno.test("buildChildEnvironment() passes the whole parent environment with passEnvironment", () => {
  const parentEnv = { ...POSIX_PARENT, BASH_FUNC_f: "() { :; }" };
  assert.deepEqual(build({ parentEnv, passEnvironment: true }), parentEnv);
});

Deno.test("buildChildEnvironment() puts extra variables on top of the safe base", () => {
  const env = build({ extra: { PATH: "/opt/bin", API_KEY: "k" } });
  assert.equal(env.PATH, "/opt/bin");
  assert.equal(env.API_KEY, "k");
  assert.equal(env.HOME, "/home/ada");
  assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
});

Deno.test("buildChildEnvironment() puts extra variables on top of the passed environment", () => {
  const env = build({ passEnvironment: true, extra: { LANG: "C", API_KEY: "k" } });
  assert.equal(env.LANG, "C");
  assert.equal(env.API_KEY, "k");
  assert.equal(env.AWS_SECRET_ACCESS_KEY, "s3cr3t");
});

Deno.test("buildChildEnvironment() lets a later layer replace a differently spelled name on Windows", () => {
  const env = build({
    parentEnv: { Path: "C:\\Windows", Foo: "parent" },
    platform: "windows",
    passEnvironment: true,
    extra: { PATH: "C:\\Tools", FOO: "extra" },
  });
  assert.deepEqual(env, { PATH: "C:\\Tools", FOO: "extra" });
});

Deno.test("buildChildEnvironment() keeps differently spelled names apart on POSIX", () => {
  const env = build({ parentEnv: { PATH: "/bin" }, extra: { Path: "/opt" } });
  assert.deepEqual(env, { PATH: "/bin", Path: "/opt" });
});

Deno.test("buildChildEnvironment() does not modify its inputs", () => {
  const parentEnv = { ...POSIX_PARENT };
  const extra = { PATH: "/opt" };
  build({ parentEnv, passEnvironment: true, extra });
  assert.deepEqual(parentEnv, POSIX_PARENT);
  assert.deepEqual(extra, { PATH: "/opt" });
});
