import assert from "node:assert/strict";
import { Random } from "./helpers/random.ts";
import { arrayItems, memberSpan, withMemberReplaced, withSpansReplaced } from "../src/json_members.ts";

const at = (json: string, path: string[]) => {
  const span = memberSpan(json, path);
  return span == null ? span : json.slice(span.start, span.start + span.length);
};

Deno.test("memberSpan: the value at a path, whatever stands before it, nested or escaped", () => {
  const json =
    ' { "a" : [1, {"b": "}]\\"{"}], "params" :{"x":{"id":1},"_meta" : {"progressToken" : 12345678901234567891 }}} ';
  assert.equal(at(json, ["params", "_meta", "progressToken"]), "12345678901234567891");
  assert.equal(at(json, ["a"]), '[1, {"b": "}]\\"{"}]');
  assert.equal(at(json, ["params", "x"]), '{"id":1}');
  assert.equal(at('{"\\u0069d":"x\\\\"}', ["id"]), '"x\\\\"');
  assert.equal(at('{"n":-1.5e+3,"t":true,"z":null}', ["n"]), "-1.5e+3");
  assert.equal(at('{"n":-1.5e+3,"t":true,"z":null}', ["z"]), "null");
});

Deno.test("memberSpan: null when missing, undefined when named twice or not an object on the way", () => {
  assert.equal(memberSpan('{"params":{}}', ["params", "_meta"]), null);
  assert.equal(memberSpan("{}", ["id"]), null);
  assert.equal(memberSpan('{"id":1,"id":2}', ["id"]), undefined);
  assert.equal(memberSpan('{"id":1,"\\u0069d":2}', ["id"]), undefined);
  assert.equal(memberSpan('{"params":{"a":1},"params":{"a":2}}', ["params", "a"]), undefined);
  assert.equal(memberSpan('{"params":[{"a":1}]}', ["params", "a"]), undefined);
  assert.equal(memberSpan("[1,2]", ["id"]), undefined);
  assert.equal(memberSpan('{"id":1', ["id"]), undefined);
  // A name used twice off the path does not matter.
  assert.equal(at('{"x":{"id":1},"y":{"id":2},"id":3}', ["id"]), "3");
});

Deno.test("withMemberReplaced and withSpansReplaced: only the values change", () => {
  const json = '{"id":"a", "params":{"n":1.0,"_meta":{"progressToken":"t"},"big":12345678901234567891}}';
  assert.equal(
    withMemberReplaced(json, ["params", "_meta", "progressToken"], 7),
    '{"id":"a", "params":{"n":1.0,"_meta":{"progressToken":7},"big":12345678901234567891}}',
  );
  assert.equal(withMemberReplaced('{"a":1,"a":2}', ["a"], 3), undefined);
  const id = memberSpan(json, ["id"])!;
  const token = memberSpan(json, ["params", "_meta", "progressToken"])!;
  assert.equal(
    withSpansReplaced(json, [[token, "9"], [id, "8"]]),
    '{"id":8, "params":{"n":1.0,"_meta":{"progressToken":9},"big":12345678901234567891}}',
  );
});

Deno.test("arrayItems: each item of an array as written; undefined for no array or one cut short", () => {
  assert.deepEqual(arrayItems(' [ {"a":[1,"]"]} ,\n2.50, "x\\"]" ] '), ['{"a":[1,"]"]}', "2.50", '"x\\"]"']);
  assert.deepEqual(arrayItems("[]"), []);
  assert.equal(arrayItems('{"a":1}'), undefined);
  assert.equal(arrayItems("[1,2"), undefined);
  assert.equal(arrayItems("[1 2]"), undefined);
});

// ---- generated texts, JSON.parse as the reference -----------------------------------------------------

const NAMES = [
  "id",
  "method",
  "params",
  "_meta",
  "progressToken",
  "requestId",
  "x",
  "\\u0069d",
  "\\u005fmeta",
];
const SCALARS = [
  "1",
  "-0",
  "1.0",
  "1e-400",
  "12345678901234567891",
  "true",
  "null",
  '""',
  '"a\\"b"',
  '"]}{["',
  '"\\\\"',
];
const SPACES = ["", " ", "\n", "\r\n ", "\t"];

/** A random JSON text: objects whose names repeat now and then, with escapes, arrays, odd spacing. */
function randomJson(random: Random, depth: number): string {
  const space = () => random.pick(SPACES);
  if (depth > 3 || random.chance(0.35)) return random.pick(SCALARS);
  if (random.chance(0.25)) {
    const items = Array.from(
      { length: random.int(4) },
      () => space() + randomJson(random, depth + 1) + space(),
    );
    return `[${items.join(",")}]`;
  }
  const members = Array.from(
    { length: random.int(5) },
    () => `${space()}"${random.pick(NAMES)}"${space()}:${space()}${randomJson(random, depth + 1)}${space()}`,
  );
  return `{${members.join(",")}}`;
}

Deno.test("memberSpan on generated texts: what it finds is what JSON.parse reads there, and only that is replaced", () => {
  const random = new Random(20261207);
  const paths = [["id"], ["method"], ["params", "_meta", "progressToken"], ["params", "requestId"], [
    "x",
    "x",
  ]];
  let found = 0;
  for (let round = 0; round < 20_000; round++) {
    const json = randomJson(random, 0);
    const path = random.pick(paths);
    const span = memberSpan(json, path);
    const parsed = JSON.parse(json);
    let value: unknown = parsed;
    for (const name of path) {
      value = typeof value === "object" && value !== null && !Array.isArray(value) &&
          Object.hasOwn(value, name)
        ? (value as Record<string, unknown>)[name]
        : undefined;
    }
    if (span === undefined) continue; // Refused: the caller writes the message anew from its parse.
    if (span === null) {
      assert.equal(value, undefined, `${json}: ${path} is there`);
      continue;
    }
    found++;
    const text = json.slice(span.start, span.start + span.length);
    assert.deepEqual(JSON.parse(text), value, `${json}: ${path}`);
    // Replaced there, the text reads as the original with only that value changed.
    const replaced = JSON.parse(withSpansReplaced(json, [[span, '"NEW"']]));
    let target = parsed;
    for (const name of path.slice(0, -1)) target = target[name];
    target[path.at(-1)!] = "NEW";
    assert.deepEqual(replaced, parsed, `${json}: ${path} replaced`);
  }
  assert.ok(found > 500, `only ${found} spans found`);
});
