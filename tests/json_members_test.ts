import assert from "node:assert/strict";
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
