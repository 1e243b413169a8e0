import assert from "node:assert/strict";
import {
  answerToInvalid,
  clientRequestIdSpan,
  ErrorCode,
  errorResponse,
  idOfTruncatedResponse,
  isExactInteger,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcResponse,
  parseMessages,
  readsOneWay,
  type RequestId,
  resultResponse,
  reusedRequestId,
  singleMessageLine,
  truncatedMessageKind,
  validateMessage,
  withIdAt,
  withRequestId,
} from "../src/jsonrpc.ts";

function accepts(value: Record<string, unknown>): void {
  const snapshot = structuredClone(value);
  const result = validateMessage(value);
  assert.equal(typeof result, "object", `${JSON.stringify(value)} is rejected: ${result}`);
  assert.equal(result, value, "the message itself is returned");
  assert.deepEqual(value, snapshot, "the message is not modified");
}

function rejects(value: unknown, pattern: RegExp): void {
  const result = validateMessage(value);
  assert.equal(typeof result, "string", `${JSON.stringify(value)} is accepted`);
  assert.match(result as string, pattern);
}

Deno.test("validateMessage: accepts requests with string, numeric and falsy ids", () => {
  accepts({ jsonrpc: "2.0", id: "abc", method: "tools/list" });
  accepts({
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "x", _meta: { progressToken: 1 } },
  });
  accepts({ jsonrpc: "2.0", id: 0, method: "ping" });
  accepts({ jsonrpc: "2.0", id: "", method: "ping" });
  accepts({ jsonrpc: "2.0", id: -1.5, method: "ping", params: [1, 2] });
});

Deno.test("validateMessage: accepts notifications, with or without params", () => {
  accepts({ jsonrpc: "2.0", method: "notifications/initialized" });
  accepts({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: "t", progress: 1 } });
});

Deno.test("validateMessage: accepts result and error responses", () => {
  accepts({ jsonrpc: "2.0", id: 1, result: {} });
  accepts({ jsonrpc: "2.0", id: "x", result: { tools: [], _meta: { k: 1 } } });
  accepts({ jsonrpc: "2.0", id: 2, error: { code: -32601, message: "Method not found" } });
  accepts({ jsonrpc: "2.0", id: 3, error: { code: -32000, message: "m", data: { detail: true } } });
});

Deno.test("validateMessage: accepts an error response with a null id", () => {
  accepts({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
});

Deno.test("validateMessage: keeps unknown fields", () => {
  accepts({ jsonrpc: "2.0", id: 1, method: "x", "x-extension": { a: 1 } });
  accepts({ jsonrpc: "2.0", method: "x", extra: [1] });
  accepts({ jsonrpc: "2.0", id: 1, result: {}, extra: "kept" });
});

Deno.test("validateMessage: rejects anything but a JSON object", () => {
  for (const value of [null, undefined, 1, "text", true, [], [{ jsonrpc: "2.0", method: "ping" }]]) {
    rejects(value, /must be a JSON object/);
  }
});

Deno.test("validateMessage: rejects a missing or wrong jsonrpc version", () => {
  rejects({ id: 1, method: "ping" }, /"jsonrpc": "2.0"/);
  rejects({ jsonrpc: "1.0", id: 1, method: "ping" }, /"jsonrpc": "2.0"/);
  rejects({ jsonrpc: 2, id: 1, method: "ping" }, /"jsonrpc": "2.0"/);
});

Deno.test("validateMessage: rejects ids that are neither string nor number", () => {
  for (const id of [true, {}, [1], undefined]) {
    rejects({ jsonrpc: "2.0", id, method: "ping" }, /"id" must be a string or a number/);
    rejects({ jsonrpc: "2.0", id, result: {} }, /"id" must be a string or a number/);
  }
});

Deno.test("validateMessage: rejects a non-string method", () => {
  rejects({ jsonrpc: "2.0", id: 1, method: 5 }, /"method" must be a string/);
  rejects({ jsonrpc: "2.0", method: null }, /"method" must be a string/);
});

Deno.test("validateMessage: rejects a request with a null id", () => {
  rejects({ jsonrpc: "2.0", id: null, method: "ping" }, /must not be null/);
});

Deno.test("validateMessage: rejects params that are not an object or an array", () => {
  for (const params of ["x", 1, true, null]) {
    rejects({ jsonrpc: "2.0", id: 1, method: "ping", params }, /"params" must be an object or an array/);
    rejects({ jsonrpc: "2.0", method: "notifications/x", params }, /"params"/);
  }
});

Deno.test("validateMessage: rejects an object with neither method nor id", () => {
  rejects({ jsonrpc: "2.0" }, /needs "method".*or "id"/);
  rejects({ jsonrpc: "2.0", result: {} }, /needs "method"/);
});

Deno.test("validateMessage: rejects a response with both or neither of result and error", () => {
  rejects({ jsonrpc: "2.0", id: 1 }, /exactly one of "result" and "error"/);
  rejects({ jsonrpc: "2.0", id: 1, result: {}, error: { code: 1, message: "m" } }, /exactly one of/);
});

Deno.test("validateMessage: rejects an error that is not an object with a numeric code", () => {
  for (const error of [null, "boom", 1, {}, { code: "1", message: "m" }, { message: "m" }]) {
    rejects({ jsonrpc: "2.0", id: 1, error }, /"error" must be an object with a numeric "code"/);
  }
});

Deno.test("isRequest, isNotification, isResponse: tell the three kinds apart", () => {
  const cases: [JsonRpcMessage, "request" | "notification" | "response"][] = [
    [{ jsonrpc: "2.0", id: 1, method: "ping" }, "request"],
    [{ jsonrpc: "2.0", id: 0, method: "ping" }, "request"],
    [{ jsonrpc: "2.0", id: "", method: "ping" }, "request"],
    [{ jsonrpc: "2.0", method: "notifications/initialized" }, "notification"],
    [
      { jsonrpc: "2.0", method: "notifications/initialized", id: undefined } as JsonRpcMessage,
      "notification",
    ],
    [{ jsonrpc: "2.0", id: 1, result: {} }, "response"],
    [{ jsonrpc: "2.0", id: 0, error: { code: 1, message: "m" } }, "response"],
    [{ jsonrpc: "2.0", id: null, error: { code: 1, message: "m" } }, "response"],
  ];
  for (const [message, kind] of cases) {
    const label = JSON.stringify(message);
    assert.equal(isRequest(message), kind === "request", `isRequest(${label})`);
    assert.equal(isNotification(message), kind === "notification", `isNotification(${label})`);
    assert.equal(isResponse(message), kind === "response", `isResponse(${label})`);
  }
});

Deno.test("singleMessageLine: one message on one line is kept as written, without surrounding whitespace", () => {
  const text = '{"jsonrpc":"2.0","id":1,"result":{"n":1.50,"s":"\\u00e9 \\n"}}';
  assert.equal(singleMessageLine(text), text);
  assert.equal(singleMessageLine(` \t${text}\r\n`), text);
});

Deno.test("singleMessageLine: a line break inside, or a batch, needs serializing again", () => {
  assert.equal(singleMessageLine('{"jsonrpc":"2.0",\n"id":1,"result":{}}'), undefined);
  assert.equal(singleMessageLine('{"jsonrpc":"2.0",\r"id":1,"result":{}}'), undefined);
  assert.equal(singleMessageLine(' [{"jsonrpc":"2.0","id":1,"result":{}}]'), undefined);
});

Deno.test("errorResponse: builds an error response, with data only when given", () => {
  assert.deepEqual(errorResponse(7, ErrorCode.InvalidRequest, "bad"), {
    jsonrpc: "2.0",
    id: 7,
    error: { code: -32600, message: "bad" },
  });
  assert.equal("data" in errorResponse(7, -1, "m").error!, false);
  assert.deepEqual(errorResponse(null, ErrorCode.ParseError, "Parse error", { at: 3 }), {
    jsonrpc: "2.0",
    id: null,
    error: { code: -32700, message: "Parse error", data: { at: 3 } },
  });
  assert.deepEqual(errorResponse("x", -1, "m", null).error, { code: -1, message: "m", data: null });
});

Deno.test("resultResponse: builds a result response", () => {
  assert.deepEqual(resultResponse("a", { ok: true }), { jsonrpc: "2.0", id: "a", result: { ok: true } });
});

Deno.test("ErrorCode: carries the JSON-RPC and MCP codes", () => {
  assert.deepEqual(ErrorCode, {
    ParseError: -32700,
    InvalidRequest: -32600,
    MethodNotFound: -32601,
    InternalError: -32603,
    ConnectionClosed: -32000,
    RequestTimeout: -32001,
  });
});

Deno.test("idOfTruncatedResponse: finds the id at either end of a line too long to read whole", () => {
  assert.equal(
    idOfTruncatedResponse('{"jsonrpc":"2.0","id":42,"_meta":{"text":"xxxx', 'xxx"},"result":{}}'),
    42,
  );
  assert.equal(idOfTruncatedResponse('{"note":"xx', 'xx","result":{},"id":"a\\"b"}'), 'a"b');
  assert.equal(idOfTruncatedResponse('{"result":{"nested":{"id":3},"t":"x', 'x"}}'), undefined);
});

Deno.test("truncatedMessageKind: finds an answer's id at either end of a line too long to read whole", () => {
  const idOf = (head: string, tail: string) => {
    const message = truncatedMessageKind(head, tail);
    return message?.kind === "response" ? message.id : undefined;
  };
  assert.equal(idOf('{"jsonrpc":"2.0","id":42,"result":{"text":"xxxx', 'xxx"}}'), 42);
  assert.equal(idOf('{"id":"a\\"b","result":{"text":"xx', 'xx"}}'), 'a"b');
  assert.equal(idOf('{"result":{"content":[{"text":"x', 'x"}]},"jsonrpc":"2.0","id":7}'), 7);
  assert.equal(idOf('{"result":{"nested":{"id":3},"t":"x', 'x"}}'), undefined);
  // A request is not an answer (found by review: its id failed the proxy's request of the same id).
  assert.equal(idOf('{"jsonrpc":"2.0","id":2,"method":"roots/list","params":{"x":"aa', 'aa"}}'), undefined);
});

/** `line`'s first and last `edge` characters, as a line too long to read whole is known. */
function ends(line: string, edge = 64): [string, string] {
  return [line.slice(0, edge), line.slice(-edge)];
}

const PAD = "x".repeat(500);

Deno.test("truncatedMessageKind: a request's id and method at either end, as serializers write them", () => {
  const python = `{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"${PAD}"}}`;
  assert.deepEqual(truncatedMessageKind(...ends(python)), { kind: "request", id: 2, method: "ping" });
  const typescript = `{"method":"tools/call","params":{"pad":"${PAD}"},"jsonrpc":"2.0","id":"a\\"b"}`;
  assert.deepEqual(truncatedMessageKind(...ends(typescript)), {
    kind: "request",
    id: 'a"b',
    method: "tools/call",
  });
  const go = `{ "jsonrpc": "2.0", "method": "ping", "params": {"pad": "${PAD}"}, "id": -7 }`;
  assert.deepEqual(truncatedMessageKind(...ends(go)), { kind: "request", id: -7, method: "ping" });
  // The whole line in both ends, as when it is shorter than what is kept of each.
  assert.deepEqual(truncatedMessageKind(python, python), { kind: "request", id: 2, method: "ping" });
});

Deno.test("truncatedMessageKind: an id beyond 2^53 is kept as written", () => {
  const big = "12345678901234567891";
  for (
    const line of [
      `{"jsonrpc":"2.0","id":${big},"method":"ping","params":{"pad":"${PAD}"}}`,
      `{"method":"ping","params":{"pad":"${PAD}"},"jsonrpc":"2.0","id":${big}}`,
    ]
  ) {
    const found = truncatedMessageKind(...ends(line));
    assert.equal(found?.kind, "request");
    const id = (found as { id: RequestId }).id;
    assert.ok(isExactInteger(id));
    assert.equal(JSON.stringify({ id }), `{"id":${big}}`);
  }
});

Deno.test("truncatedMessageKind: an id JSON would write otherwise is kept as written, beside its value", () => {
  // Found by QA: the error answer to a line over --max-line-size had `1000` for `1e3`, `"é"` for `"\u00e9"`.
  for (const written of ["1e3", "-0", "1.50", "0.1e-2", '"\\u00e9"', "7.0"]) {
    for (
      const line of [
        `{"jsonrpc":"2.0","id":${written},"method":"ping","params":{"pad":"${PAD}"}}`,
        `{"method":"ping","params":{"pad":"${PAD}"},"jsonrpc":"2.0","id":${written}}`,
        `{"jsonrpc":"2.0","id":${written},"result":{"pad":"${PAD}"}}`,
      ]
    ) {
      const found = truncatedMessageKind(...ends(line)) as { id: RequestId; spelled?: RequestId };
      assert.equal(JSON.stringify({ id: found.spelled }), `{"id":${written}}`, line.slice(0, 40));
      // And its value, to match it with.
      assert.deepEqual(found.id, JSON.parse(written));
    }
  }
});

Deno.test("truncatedMessageKind: an id inside params is never taken", () => {
  const notification = `{"jsonrpc":"2.0","method":"notifications/x","params":{"id":5,"pad":"${PAD}","id":6}}`;
  assert.deepEqual(truncatedMessageKind(...ends(notification)), {
    kind: "notification",
    method: "notifications/x",
  });
  const request = `{"jsonrpc":"2.0","method":"tools/call","params":{"id":99,"pad":"${PAD}"},"id":4}`;
  assert.deepEqual(truncatedMessageKind(...ends(request)), { kind: "request", id: 4, method: "tools/call" });
  // Quotes and commas inside a string at the end are not members.
  const inString = `{"jsonrpc":"2.0","method":"n","params":{"text":"${PAD},\\"id\\":3,\\"x\\":\\"y"}}`;
  assert.deepEqual(truncatedMessageKind(...ends(inString)), { kind: "notification", method: "n" });
});

Deno.test("truncatedMessageKind: answers, and lines whose ends do not tell", () => {
  const answer = `{"jsonrpc":"2.0","id":7,"result":{"pad":"${PAD}"}}`;
  assert.deepEqual(truncatedMessageKind(...ends(answer)), { kind: "response", id: 7 });
  const error = `{"error":{"code":1,"message":"${PAD}"},"jsonrpc":"2.0","id":"s"}`;
  assert.deepEqual(truncatedMessageKind(...ends(error)), { kind: "response", id: "s" });
  for (
    const line of [
      `{"jsonrpc":"2.0","params":{"pad":"${PAD}"},"method":"m","extra":{},"id":1,"more":[]}`, // id in the middle
      `{"jsonrpc":"2.0","id":null,"method":"ping","params":{"pad":"${PAD}"}}`, // a request may not have null
      `{"jsonrpc":"2.0","id":{"x":1},"method":"ping","params":{"pad":"${PAD}"}}`,
      `{"jsonrpc":"2.0","id":3,"params":{"pad":"${PAD}"},"x":1}`, // neither method nor result
      `[{"jsonrpc":"2.0","id":3,"method":"ping","params":{"pad":"${PAD}"}}]`, // a batch
      `not json at all ${PAD}`,
    ]
  ) {
    assert.equal(truncatedMessageKind(...ends(line)), undefined, line.slice(0, 60));
  }
});

Deno.test("truncatedMessageKind: of a member given twice, the last one counts, as JSON.parse has it", () => {
  const twice = `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"${PAD}"},"id":2}`;
  assert.deepEqual(truncatedMessageKind(...ends(twice)), { kind: "request", id: 2, method: "ping" });
  assert.deepEqual(truncatedMessageKind(twice, twice), { kind: "request", id: 2, method: "ping" });
});

Deno.test("reusedRequestId: an id twice in a batch, or already in flight; notifications and answers don't count", () => {
  const request = (id: string | number) => ({ jsonrpc: "2.0", id, method: "ping" });
  assert.equal(reusedRequestId([request(1), request(2)], () => false), undefined);
  assert.equal(reusedRequestId([request(1), request(1)], () => false), 1);
  assert.equal(reusedRequestId([request("a")], (id) => id === "a"), "a");
  assert.equal(reusedRequestId([{ jsonrpc: "2.0", id: 1, result: {} }, request(1)], () => false), undefined);
  assert.equal(reusedRequestId([{ jsonrpc: "2.0", method: "n" }, null, 5], () => true), undefined);
});

Deno.test("validateMessage: a numeric id must be finite (1e400 parses to Infinity)", () => {
  const parsed = JSON.parse('{"jsonrpc":"2.0","id":1e400,"method":"ping"}');
  assert.equal(validateMessage(parsed), '"id" must be a finite number');
});

Deno.test("withRequestId replaces the top-level id at either end and nothing else", () => {
  assert.equal(
    withRequestId('{"jsonrpc":"2.0","id":12,"result":{"id":12}}', 12, "a"),
    '{"jsonrpc":"2.0","id":"a","result":{"id":12}}',
  );
  assert.equal(
    withRequestId('{"result":{"id":12},"jsonrpc":"2.0","id":12}', 12, 7),
    '{"result":{"id":12},"jsonrpc":"2.0","id":7}',
  );
  assert.equal(
    withRequestId('{ "id" : 3 , "result": {}}', 3, 'q"uote'),
    '{ "id" : "q\\"uote" , "result": {}}',
  );
  assert.equal(withRequestId('{"result":{},"id":4}\t', 4, 1), '{"result":{},"id":1}\t');
  const big = `{"result":{"text":"${"x".repeat(100_000)}"},"jsonrpc":"2.0","id":5}`;
  assert.equal(withRequestId(big, 5, "z"), big.slice(0, -2) + '"z"}');
  // Not the id asked for, or not where a serializer puts it: the caller serializes anew.
  assert.equal(withRequestId('{"jsonrpc":"2.0","id":123,"result":{}}', 12, 1), undefined);
  assert.equal(withRequestId('{"result":{"x":{"id":12}}}', 12, 1), undefined);
  assert.equal(withRequestId('{"result":{"a":1,"id":12},"jsonrpc":"2.0"}', 12, 1), undefined);
  assert.equal(
    withRequestId(`{"result":{"text":"${"y".repeat(300)}"},"id":9,"jsonrpc":"2.0"}`, 9, 1),
    undefined,
  );
});

Deno.test("withRequestId: ids written without whitespace at either end, and the near misses its shorter way must leave to the patterns", () => {
  const cases: [string, RequestId, string | undefined][] = [
    ['{"jsonrpc":"2.0","id":1,"result":{}}', 1, '{"jsonrpc":"2.0","id":"n","result":{}}'],
    ['{"id":1}', 1, '{"id":"n"}'],
    ['{"jsonrpc":"2.0","id":"a\\"b","result":{}}', 'a"b', '{"jsonrpc":"2.0","id":"n","result":{}}'],
    ['{"result":{},"jsonrpc":"2.0","id":"x"}', "x", '{"result":{},"jsonrpc":"2.0","id":"n"}'],
    ['{"result":"}","id":7}', 7, '{"result":"}","id":"n"}'],
    // The same id written another way: found by the patterns, which read it.
    ['{"jsonrpc":"2.0","id":"\\u0061","result":{}}', "a", '{"jsonrpc":"2.0","id":"n","result":{}}'],
    ['{"jsonrpc":"2.0","id":-0,"result":{}}', 0, '{"jsonrpc":"2.0","id":"n","result":{}}'],
    // Another id that begins like it, an id inside the result, a string that looks like the id.
    ['{"jsonrpc":"2.0","id":12,"result":{}}', 1, undefined],
    ['{"jsonrpc":"2.0","id":1.5,"result":{}}', 1, undefined],
    ['{"jsonrpc":"2.0","id":"1","result":{}}', 1, undefined],
    ['{"jsonrpc":"2.0","result":{"id":1}}', 1, undefined],
    ['{"jsonrpc":"2.0","result":{"x":"\\"id\\":1"}}', 1, undefined],
    ['{"jsonrpc":"2.0","result":{},"x\\"id":1}', 1, undefined], // a key that ends like "id"
  ];
  for (const [json, id, expected] of cases) assert.equal(withRequestId(json, id, "n"), expected, json);
});

/** A client's message with its id replaced, as the proxy sends it on: its text where it may, else undefined. */
function withClientRequestId(json: string, id: RequestId, newId: RequestId): string | undefined {
  const span = clientRequestIdSpan(json, id);
  return span === undefined ? undefined : withIdAt(json, span, newId);
}

Deno.test("clientRequestIdSpan: only a text whose top level names its id and method once, escapes read", () => {
  assert.equal(
    withClientRequestId('{"jsonrpc":"2.0","id":"a","method":"m","params":{"x":[1,2]}}', "a", 9),
    '{"jsonrpc":"2.0","id":9,"method":"m","params":{"x":[1,2]}}',
  );
  assert.equal(
    withClientRequestId('{"jsonrpc":"2.0","result":{},"id":3}', 3, "s"),
    '{"jsonrpc":"2.0","result":{},"id":"s"}',
  );
  // Read member by member: names inside, escapes, the id in the middle.
  for (
    const [text, expected] of [
      [
        '{"jsonrpc":"2.0","id":1,"method":"m","params":{"id":1}}',
        '{"jsonrpc":"2.0","id":2,"method":"m","params":{"id":1}}',
      ],
      [
        '{"jsonrpc":"2.0","id":1,"method":"m","params":{"t":"\\u0074"}}',
        '{"jsonrpc":"2.0","id":2,"method":"m","params":{"t":"\\u0074"}}',
      ],
      [
        '{"method":"m", "id" : 1 ,"params":{"method":"x"}}',
        '{"method":"m", "id" : 2 ,"params":{"method":"x"}}',
      ],
      ['{"jsonrpc":"2.0","\\u0069d":1,"method":"m"}', '{"jsonrpc":"2.0","\\u0069d":2,"method":"m"}'],
    ]
  ) {
    assert.equal(withClientRequestId(text, 1, 2), expected, text);
  }
  for (
    const text of [
      '{"jsonrpc":"2.0","id":1,"method":"m","id":1}', // a duplicate id
      '{"jsonrpc":"2.0","id":1,"method":"m","method":"n"}', // a duplicate method
      '{"jsonrpc":"2.0","id":1,"method":"m","\\u0069d":1}', // an escaped duplicate
      '{"jsonrpc":"2.0","id":1,"method":"m","\\u006dethod":"n"}', // an escaped duplicate method
      '{"jsonrpc":"2.0","method":"m"}', // no id
      '{"jsonrpc":"2.0","id":3,"method":"m"}', // another id
    ]
  ) {
    assert.equal(withClientRequestId(text, 1, 2), undefined, text);
  }
});

Deno.test("parseMessages: integers beyond 2^53 outside the ids, and ids that are no such integer, read as JSON.parse reads them", () => {
  for (
    const text of [
      '{"jsonrpc":"2.0","id":9007199254740991,"method":"ping"}',
      '{"jsonrpc":"2.0","id":"12345678901234567891","method":"a","params":{"n":12345678901234567891}}',
      '[{"jsonrpc":"2.0","id":1.5,"method":"a"},{"jsonrpc":"2.0","id":-0.25,"method":"b"}]',
    ]
  ) {
    const messages = parseMessages(text) as JsonRpcMessage[];
    assert.deepEqual(messages, [JSON.parse(text)].flat(), text);
  }
  // An id of an integer's value beyond 2^53, however written, is kept as written.
  const [exponent] = parseMessages('{"jsonrpc":"2.0","id":1e300,"method":"b"}') as JsonRpcMessage[];
  assert.equal(JSON.stringify(exponent.id), "1e300");
});

Deno.test("parseMessages: an integer beyond 2^53 in an id is kept as written, one object per spelling", () => {
  const big = "12345678901234567891";
  const text = `{"jsonrpc":"2.0","id":${big},"method":"tools/call","params":{"n":-${big},"x":1e+30,"y":0.5}}`;
  const [message] = parseMessages(text) as JsonRpcMessage[];
  assert.ok(isExactInteger(message.id));
  assert.equal(JSON.stringify(message), text, "every integer beyond 2^53 in it, written as it came");
  const [again] = parseMessages(text) as JsonRpcMessage[];
  assert.equal(again.id, message.id, "the same spelling is the same key");
  const near = parseMessages(text.replace(big, "12345678901234567892")) as JsonRpcMessage[];
  assert.notEqual(near[0].id, message.id, "digits a JS number would lose still tell ids apart");
  assert.equal(reusedRequestId([message, again], () => false), message.id);
  assert.equal(reusedRequestId([message, near[0]], () => false), undefined);
  // Only the id changes on the way to the child, and back.
  assert.equal(withClientRequestId(text, message.id, 7), text.replace(big, "7"));
  assert.equal(
    withRequestId(`{"jsonrpc":"2.0","id":7,"result":{}}`, 7, message.id),
    `{"jsonrpc":"2.0","id":${big},"result":{}}`,
  );
  assert.equal(
    JSON.stringify(errorResponse(message.id as RequestId, -1, "no")).includes(`"id":${big}`),
    true,
  );
});

Deno.test("parseMessages: a cancellation's requestId and a progress token beyond 2^53 are kept too", () => {
  const big = "-98765432109876543211";
  for (
    const text of [
      `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${big}}}`,
      `[{"jsonrpc":"2.0","id":1,"method":"a","params":{"_meta":{"progressToken":${big}}}}]`,
    ]
  ) {
    const messages = parseMessages(text) as JsonRpcMessage[];
    const written = JSON.stringify(text.startsWith("[") ? messages : messages[0]);
    assert.equal(written, text);
  }
});

Deno.test("answerToInvalid: -32700 for no JSON; -32600 under a readable id; a batch gets an array", () => {
  const message = (answer: unknown) => (answer as { error: { message: string } }).error.message;
  const notJson = answerToInvalid("not JSON", undefined) as JsonRpcResponse;
  assert.deepEqual([notJson.id, notJson.error?.code], [null, -32700]);
  assert.match(message(notJson), /invalid message: not JSON/);

  const wrongMethod = answerToInvalid('"method" must be a string', { jsonrpc: "2.0", id: 4, method: 7 });
  assert.deepEqual(wrongMethod, {
    jsonrpc: "2.0",
    id: 4,
    error: { code: -32600, message: 'mcp-proxy: invalid message: "method" must be a string' },
  });
  for (const [id, expected] of [["s", "s"], [1.5, 1.5], [2 ** 53 + 2, null], [{}, null], [true, null]]) {
    assert.equal((answerToInvalid("x", { id, method: "ping" }) as JsonRpcResponse).id, expected, String(id));
  }
  assert.equal((answerToInvalid("x", "a string") as JsonRpcResponse).id, null);

  const batch = answerToInvalid("x", [
    { jsonrpc: "2.0", id: 2, method: "ping" },
    { method: "n" },
    { id: "3" },
    7,
  ]);
  assert.ok(Array.isArray(batch));
  assert.deepEqual(batch.map((answer) => [answer.id, answer.error?.code]), [[2, -32600], ["3", -32600], [
    null,
    -32600,
  ]]);
  assert.match(message(batch[0]), /batches are not relayed/);
  assert.equal(answerToInvalid("x", [{ jsonrpc: "2.0", method: "notifications/a" }]), undefined);
  assert.match(message(answerToInvalid("x", [])), /this one is empty/);
  // With the line's text, ids as written (found by QA: `"\u00e9"` came back as `"é"`).
  const text = '[{"jsonrpc":"2.0","id":"\\u00e9","method":"ping"},{"id":1e3,"method":"m"},{"id":"plain"}]';
  const written = answerToInvalid("x", JSON.parse(text), text) as JsonRpcResponse[];
  assert.equal(JSON.stringify(written.map((answer) => answer.id)), '["\\u00e9",1e3,"plain"]');
  const single = '{"jsonrpc":"2.0","id":"\\u00e9","method":7}';
  assert.equal(
    JSON.stringify((answerToInvalid("x", JSON.parse(single), single) as JsonRpcResponse).id),
    '"\\u00e9"',
  );
});

Deno.test("readsOneWay: a name the proxy reads, twice in one object, however spelled, makes a text untrusted", () => {
  const ok = [
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":1}}}',
    // Twice in the text, but in different objects, or where the proxy reads nothing.
    '{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{"id":2,"method":"n","params":{}}}}',
    '{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{"a":1,"a":2}},"x":"\\u00e9"}',
  ];
  for (const text of ok) assert.equal(readsOneWay(text), true, text);
  const twice = [
    '{"id":1,"method":"m","params":{"_meta":{"progressToken":1}},"params":{}}',
    '{"id":1,"method":"m","params":{"_meta":{"progressToken":1},"_meta":{}}}',
    '{"id":1,"method":"m","params":{"_meta":{"progressToken":1,"progressToken":null}}}',
    '{"id":1,"method":"m","params":{},"par\\u0061ms":{}}',
    '{"id":1,"method":"m","params":{"uri":"a","uri":"b"}}',
    '{"id":1,"method":"initialize","params":{"capabilities":{},"capabilities":{"sampling":{}}}}',
    '{"method":"notifications/cancelled","params":{"requestId":1,"requestId":2}}',
  ];
  for (const text of twice) assert.equal(readsOneWay(text), false, text);
});

Deno.test("parseMessages: an id beyond 2^53 written with a fraction or exponent is kept as written", () => {
  for (const spelling of ["12345678901234567891.0", "12345678901234567891e0", "-12345678901234567891"]) {
    const [message] = parseMessages(`{"jsonrpc":"2.0","id":${spelling},"method":"ping"}`) as JsonRpcMessage[];
    assert.equal(JSON.stringify(message.id), spelling);
  }
  // Thousands of levels deep: a reviver cannot read it, the plain parse can; the message is not lost.
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  const messages = parseMessages(
    `{"jsonrpc":"2.0","id":12345678901234567891,"method":"m","params":{"d":${deep}}}`,
  );
  assert.ok(Array.isArray(messages) && messages.length === 1);
});

Deno.test("withRequestId: a text naming its id at both ends is left to be read member by member", () => {
  assert.equal(withRequestId('{"jsonrpc":"2.0","id":5,"result":{},"id":5}', 5, "x"), undefined);
  assert.equal(withRequestId('{"jsonrpc":"2.0","id":5,"result":{},"id":7}', 7, "x"), undefined);
  assert.equal(
    withRequestId('{"jsonrpc":"2.0","id":5,"result":{"id":5}}', 5, "x"),
    '{"jsonrpc":"2.0","id":"x","result":{"id":5}}',
    "an id inside is no other end",
  );
  assert.equal(
    withRequestId('{"result":{"id":1},"jsonrpc":"2.0","id":5}', 5, 6),
    '{"result":{"id":1},"jsonrpc":"2.0","id":6}',
  );
});
