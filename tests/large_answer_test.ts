import assert from "node:assert/strict";
import { clientRequestIdSpan, singleMessageLine, withIdAt } from "../src/jsonrpc.ts";
import {
  answerIdOf,
  asEventData,
  bodyAsLine,
  concatenated,
  lineWithId,
  receivedLines,
  withAnswerId,
} from "../src/large_answer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);

Deno.test("answerIdOf: the id of an answer written as the TypeScript or the Python SDK writes one", () => {
  assert.deepEqual(answerIdOf(bytes('{"jsonrpc":"2.0","id":42,"result":{"a":1}}')), {
    id: 42,
    start: 22,
    end: 24,
  });
  const ts = '{"result":{"a":[1,2]},"jsonrpc":"2.0","id":7}';
  assert.deepEqual(answerIdOf(bytes(ts)), { id: 7, start: ts.length - 2, end: ts.length - 1 });
  assert.deepEqual(answerIdOf(bytes('{"jsonrpc":"2.0","id":0,"result":{}}')), { id: 0, start: 22, end: 23 });
});

Deno.test("answerIdOf: anything else is left to be parsed", () => {
  for (
    const text of [
      '{"jsonrpc":"2.0","id":"s","result":{}}', // a string id: never one the proxy gave
      '{"jsonrpc":"2.0","id":07,"result":{}}', // not a JSON number
      '{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}', // an error: small, parsed
      '{"jsonrpc":"2.0","id":1,"method":"m","params":{}}', // a request
      '{"jsonrpc": "2.0", "id": 1, "result": {}}', // spaced: no SDK writes it
      '{"result":{"x":{"jsonrpc":"2.0","id":7}}}', // the id of a nested object
      '{"result":{},"jsonrpc":"2.0","id":7} ', // something after the object
      '{"result":{},"jsonrpc":"2.0","id":1234567890123456}', // longer than a safe integer may be
      '{"jsonrpc":"2.0","id":1,"result":[]}', // a result that is not an object
    ]
  ) {
    assert.equal(answerIdOf(bytes(text)), undefined, text);
  }
});

Deno.test("withAnswerId replaces the id and keeps every other byte, in a copy", () => {
  const text = '{"jsonrpc":"2.0","id":42,"result":{"n":1.50,"s":"é"}}';
  const line = bytes(text);
  const copy = withAnswerId(line, answerIdOf(line)!, "client-é");
  assert.equal(decoder.decode(copy), text.replace("42", '"client-é"'));
  assert.equal(decoder.decode(line), text, "the line itself is not changed");
  const ts = bytes('{"result":{},"jsonrpc":"2.0","id":7}');
  assert.equal(
    decoder.decode(withAnswerId(ts, answerIdOf(ts)!, 123456)),
    '{"result":{},"jsonrpc":"2.0","id":123456}',
  );
});

Deno.test("asEventData: carriage returns between tokens become spaces; without one, the same bytes", () => {
  const plain = bytes('{"result":{},"jsonrpc":"2.0","id":1}');
  assert.equal(asEventData(plain), plain);
  const spaced = bytes('{"result":{\r"a":1},"jsonrpc":"2.0","id":1}');
  assert.equal(decoder.decode(asEventData(spaced)), '{"result":{ "a":1},"jsonrpc":"2.0","id":1}');
});

Deno.test("bodyAsLine: a large body that is its message's line exactly is written as it is; else its text is", () => {
  const big = "x".repeat(70_000);
  const asLine = (body: Uint8Array<ArrayBuffer>) => {
    const line = singleMessageLine(decoder.decode(body));
    return line === undefined ? undefined : bodyAsLine(body, line);
  };
  const plain = bytes(`{"jsonrpc":"2.0","id":"a","result":{"text":"${big}é"}}`);
  assert.equal(asLine(plain), plain, "the same bytes, not a copy");
  const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...plain]);
  const invalid = bytes(`{"jsonrpc":"2.0","id":"a","result":{"text":"${big}?"}}`);
  invalid[invalid.length - 4] = 0xff; // Not UTF-8: the text holds U+FFFD there.
  for (
    const body of [
      bytes(`{"jsonrpc":"2.0","id":1,"result":{"text":"small"}}`),
      bytes(` {"jsonrpc":"2.0","id":1,"result":{"text":"${big}"}}`),
      bytes(`{"jsonrpc":"2.0","id":1,"result":{"text":"${big}"}}\n`),
      bytes(`{"jsonrpc":"2.0",\n"id":1,"result":{"text":"${big}"}}`),
      bytes(`{"jsonrpc":"2.0",\r"id":1,"result":{"text":"${big}"}}`),
      bytes(`[{"jsonrpc":"2.0","id":1,"result":{"text":"${big}"}}]`),
      withBom,
      invalid,
    ]
  ) {
    assert.equal(asLine(body), undefined, decoder.decode(body.subarray(0, 40)));
  }
});

Deno.test("receivedLines: one message as its line (made one) or its bytes when large; a batch, each as written", () => {
  const receivedLine = (count: number, text: string, bytes?: Uint8Array<ArrayBuffer>) => {
    const lines = receivedLines(count, text, bytes);
    assert.ok(lines.length <= 1);
    return lines[0];
  };
  const big = "x".repeat(70_000);
  const large = `{"jsonrpc":"2.0","id":1,"result":{"text":"${big}"}}`;
  const largeBytes = bytes(large);
  assert.equal(receivedLine(1, large, largeBytes), largeBytes, "the server's bytes, not a copy");
  assert.equal(receivedLine(1, large, undefined), large);
  const small = '{"jsonrpc":"2.0","id":1,"result":{}}';
  assert.equal(receivedLine(1, small, bytes(small)), small, "a small message goes as text");
  const spaced = ` ${large}`;
  assert.equal(receivedLine(1, spaced, bytes(spaced)), large, "white space around it: the line, trimmed");
  const broken = '{"jsonrpc":"2.0",\r\n"id":1,"result":{"n":1.0}}\n';
  assert.equal(
    receivedLine(1, broken, bytes(broken)),
    '{"jsonrpc":"2.0",  "id":1,"result":{"n":1.0}}',
    "a line break inside: made a space",
  );
  // A batch, of one message too (never written as an array: stdio has no batches), each as written.
  const odd = '{"jsonrpc":"2.0","id":2,"result":{"n":1.0,"big":12345678901234567891}}';
  assert.deepEqual(receivedLines(2, `[${small},\n ${odd}]`, undefined), [small, odd]);
  assert.deepEqual(receivedLines(1, `[${odd}]`, bytes(`[${odd}]`)), [odd]);
});

Deno.test("lineWithId: the id replaced in the bytes, as in the text, wherever the text's offsets tell the bytes'", () => {
  const wide = "ü€😀".repeat(20_000);
  const cases: { json: string; id: string | number; bytes: boolean }[] = [
    // ASCII up to past the id: the offsets from the start agree.
    { json: `{"jsonrpc":"2.0","id":5,"method":"m","params":{"t":"${wide}"}}`, id: 5, bytes: true },
    {
      json: `{ "jsonrpc" : "2.0", "id" : "a-1" , "method":"m","params":{"t":"${wide}"}}`,
      id: "a-1",
      bytes: true,
    },
    // ASCII from the id to the end: the offsets from the end agree.
    { json: `{"method":"m","params":{"t":"${wide}"},"jsonrpc":"2.0","id":77}`, id: 77, bytes: true },
    { json: `{"method":"m","params":{"t":"${wide}"},"id":"x" }`, id: "x", bytes: true },
    // Beyond ASCII on both sides of the id's start: the text is used.
    { json: `{"jsonrpc":"2.0","id":"é","method":"m","params":{"t":"${wide}"}}`, id: "é", bytes: false },
    { json: `{"method":"m","params":{"t":"${wide}"},"id":"é"}`, id: "é", bytes: false },
  ];
  for (const { json, id, bytes: asBytes } of cases) {
    const span = clientRequestIdSpan(json, id)!;
    assert.ok(span !== undefined, json.slice(0, 40));
    const original = bytes(json);
    const line = lineWithId(original, json, span, 123);
    if (!asBytes) {
      assert.equal(line, undefined, json.slice(0, 40));
      continue;
    }
    assert.ok(line !== undefined, json.slice(0, 40));
    const whole = concatenated(line);
    assert.ok(
      decoder.decode(whole) === withIdAt(json, span, 123),
      `the same as the text's: ${json.slice(0, 40)}`,
    );
    assert.equal(JSON.parse(decoder.decode(whole)).id, 123);
    // The long end is not copied: a view of the client's bytes.
    const [first, second] = line;
    assert.equal(line.length, 2);
    assert.ok(Math.min(first.length, second.length) < 100, "the short end copied with the id");
    assert.ok(
      (first.length > second.length ? first : second).buffer === original.buffer,
      "the rest uncopied",
    );
  }
});
