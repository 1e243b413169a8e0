/**
 * One stdio MCP server shared by many client sessions, as if each client had it alone.
 *
 * The child sees one client: requests from every session reach it with ids the proxy assigns, and each
 * answer goes back to the session that asked, under that session's own id. Progress tokens and
 * cancellations are mapped the same way. The first `initialize` reaches the child; later sessions get
 * the child's own InitializeResult. Requests the child sends (sampling, elicitation, roots, ping) go to
 * the session most likely to own them, and their answers come back under the child's id.
 *
 * This module does no I/O: the child is a `sendToChild` function and each session a {@link SessionPeer},
 * so the whole routing logic is unit-tested without processes or sockets.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import {
  clientRequestIdSpan,
  ErrorCode,
  errorResponse,
  idAsWritten,
  type IdSpan,
  idSpanAtAnEnd,
  idSpelling,
  isExactInteger,
  isLastMember,
  isNotification,
  isRequest,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  mayNameIdTwice,
  parseLosslesslyOr,
  readsOneWay,
  type RequestId,
  resultResponse,
  withIdAt,
} from "./jsonrpc.ts";
import { memberSpan, withMemberReplaced, withSpansReplaced } from "./json_members.ts";
import { DelayQueue } from "./delay_queue.ts";
import { VERSION } from "./version.ts";
import { FIRST_MODERN_PROTOCOL_VERSION, isModernVersion, ownEnvelope } from "./modern_headers.ts";
import {
  answerIdOf,
  type JsonText,
  leadingAnswerIdOf,
  type LinePieces,
  lineWithId,
  withAnswerId,
} from "./large_answer.ts";
import type { LineSink } from "./line_splitter.ts";

/** The client side of one session: how messages reach that client. */
export interface SessionPeer {
  /**
   * Delivers a message to the client. `relatedRequestId` is the client's own id of the request the
   * message belongs to (an answer, or progress and server requests made while that request runs), so
   * that Streamable HTTP can send it on that request's stream. `json`, when given, is the message's JSON
   * text on one line (what the child wrote, its id mapped), to send instead of serializing `message`.
   */
  deliver(message: JsonRpcMessage, relatedRequestId?: RequestId, json?: string): void;
  /**
   * Delivers the answer to the client's request `clientId` as UTF-8 JSON bytes, on one line: a large
   * answer relayed as the child wrote it (see `large_answer.ts`); `noCarriageReturn` is true when they
   * are known to hold no `\r` (an SSE stream need not look for one). A peer without it gets every answer
   * through {@link deliver}.
   */
  deliverAnswer?(clientId: RequestId, json: Uint8Array<ArrayBuffer>, noCarriageReturn?: boolean): void;
  /**
   * Starts the answer to the client's request `clientId` as UTF-8 JSON bytes that come in pieces: a large
   * answer passed on while the child still writes it (see `large_answer.ts`). Returns where the pieces
   * go, or undefined when the answer cannot go that way now (it is then gathered and delivered whole).
   */
  streamAnswer?(clientId: RequestId): AnswerSink | undefined;
  /**
   * The client cancelled its request `clientId`: no answer will come, so whatever waits for one (an
   * HTTP response stream) can end.
   */
  requestAbandoned?(clientId: RequestId): void;
  /**
   * Whether a message that belongs to no request reaches the client now (Streamable HTTP: only while its
   * GET stream is open; it is kept for it meanwhile). A peer without it always can.
   */
  listening?(): boolean;
  /**
   * The server behind the session is gone for good (`--isolate-sessions`: the session's own child
   * exited, and is not restarted): the session ends, so that its client opens a new one (Streamable
   * HTTP: its next request gets 404; legacy SSE: the stream closes). The requests it had waiting have
   * had their error answers first.
   */
  end?(reason: string): void;
}

/** Where the pieces of an answer streamed to a client go ({@link SessionPeer.streamAnswer}). */
export interface AnswerSink {
  /** The next piece, which the sink takes over; `noCarriageReturn` as in `LineSink.write`. */
  write(bytes: Uint8Array<ArrayBuffer>, noCarriageReturn?: boolean): void;
  /** The answer is complete. */
  end(): void;
  /** The answer was cut short (`reason` says how): what was sent of it is no valid message. */
  abort(reason: string): void;
}

/** No server can take a new session (it could not be started): HTTP answers 503. */
export class SessionUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SessionUnavailableError";
  }
}

/** Where the HTTP endpoints open their sessions: one shared server, or a server per session. */
export interface SessionSource {
  /** The server's name, for logs, URLs and `/status`. */
  readonly name: string;
  /** Opens a session whose messages reach the client through `peer`; throws if no server can run. */
  openSession(peer: SessionPeer, options: SessionOptions): ServerSession;
}

/** Options of {@link SharedServer}. */
export interface SharedServerOptions {
  /** The server's name, for logs and error messages. */
  name: string;
  /**
   * Writes one message to the child; `json`, when given, is its JSON text on one line (or that text's
   * UTF-8 bytes), to be written as it is instead of serializing `message`.
   */
  sendToChild(message: JsonRpcMessage, json?: JsonText | LinePieces): void;
  logger: Logger;
  /**
   * Protocol versions a later session may keep when it asks for one other than the child agreed with
   * the first session (the child, an SDK server, would have agreed to it too).
   */
  supportedProtocolVersions: readonly string[];
  /** Called each time the last open session closes. */
  onLastSessionClosed?: () => void;
  /** A request without an answer from the child for this long gets error -32001; 0: no limit. */
  requestTimeoutMs?: number;
  /**
   * How many bytes wait for the child to read them, and the most that may: beyond, a request gets an
   * error at once rather than wait in memory for a child that does not read (none grows without limit).
   */
  childBacklog?: { bytes(): number; maxBytes: number };
  /**
   * Called when a restarted child refuses the `initialize` replayed to it (see
   * {@link SharedServer.childStarted}), with why: the child cannot serve the sessions, and is to be
   * stopped and started again as if it had exited.
   */
  onRefusedAfterRestart?: (reason: string) => void;
  /**
   * How long a restarted child may take to answer the replayed `initialize` before it counts as refused;
   * and, without `requestTimeoutMs`, how long the sessions waiting for the first `initialize` wait for
   * its answer (it goes on: see {@link SharedServer.initializeOverdue}). Default
   * {@link REINITIALIZE_TIMEOUT_MS}.
   */
  reinitializeTimeoutMs?: number;
  /**
   * The child serves the stateless revision (2026-07-28 and later): it gets no `initialize`, of the proxy's
   * or a client's, and every request goes to it as it is, its id mapped. Its notifications that name a
   * subscription (`subscriptions/listen`) in `_meta` go to the request that opened it, under the client's
   * id; others with no request of their own, to the client whose request is the newest running.
   */
  modern?: boolean;
  /** With `modern`: each result of a `tools/list` the child answers (to learn its `x-mcp-header`s). */
  onToolsListed?: (result: unknown) => void;
}

/** What {@link SharedServer.discover} found out. */
export type DiscoverOutcome =
  | { served: true; version: string; supportedVersions: readonly string[] }
  /** `stopped`: the child stopped before it answered. */
  | { served: false; why: string; stopped: boolean };

/** The most pages of `tools/list` mcp-proxy reads itself (see {@link SharedServer.discover}). */
const MAX_TOOL_PAGES = 100;
/**
 * How long each page of mcp-proxy's own `tools/list` may take: well within the 10 s a client's request
 * waits for the whole of {@link SharedServer.discover} (`PROBE_WAIT_MS`), the child's start included.
 */
const TOOLS_LIST_LIMIT_MS = 5_000;

/** Where a notification of the stateless revision names its subscription (the listen request's id). */
const SUBSCRIPTION_ID_META_KEY = "io.modelcontextprotocol/subscriptionId";
const SUBSCRIPTION_ID_PATH = ["params", "_meta", SUBSCRIPTION_ID_META_KEY];

/** See {@link SharedServerOptions.reinitializeTimeoutMs}. */
export const REINITIALIZE_TIMEOUT_MS = 60_000;

/** Options of {@link SharedServer.openSession}. */
export interface SessionOptions {
  /** Short label for logs, e.g. `"sse 3f2a…"`. */
  label: string;
  /**
   * A stateless session never sends `initialize`: it counts as initialized, may receive the child's
   * requests whatever its capabilities, and an answer to such a request may arrive on another stateless
   * session (each HTTP request is its own session).
   */
  stateless?: boolean;
}

/** A request forwarded to the child, waiting for its answer. */
interface PendingChildRequest {
  session: ServerSession | undefined;
  clientId: RequestId;
  /** The client's id as it wrote it, when JSON would write its value otherwise (`idAsWritten`). */
  answerId?: RequestId;
  isInitialize: boolean;
  /** The client's progress token, replaced by the proxy id on the way to the child. */
  clientProgressToken?: RequestId;
  /** For `resources/subscribe`: the URI, to forget the subscription if the child refuses it. */
  subscribeUri?: string;
  /** For `logging/setLevel`: its params, kept if the child takes it (replayed after a restart). */
  logLevelParams?: Record<string, unknown>;
  /**
   * For the `resources/subscribe` that subscribes the child: the same subscriptions of other sessions
   * made while it runs, answered as it is (see `#answeredSubscription`).
   */
  joined?: { session: ServerSession; request: JsonRpcRequest; replyId: RequestId }[];
  /** For `initialize`: its params, kept if it succeeds (replayed after a restart). */
  initializeParams?: Record<string, unknown>;
  /**
   * For the proxy's own requests: what to do with the answer (`stopped`: the error answer of a child that
   * stopped first, with `answerOnStop`).
   */
  onAnswer?: (response: JsonRpcResponse, stopped?: boolean) => void;
  /** A `tools/list` of a modern child: its result is read (see `SharedServerOptions.onToolsListed`). */
  listsTools?: boolean;
  /** For the proxy's own requests made by {@link SharedServer.discover}: `onAnswer` hears of a stop too. */
  answerOnStop?: boolean;
}

/** The id an answer to `pending` carries back to its client: as the client wrote it. */
function writtenId(pending: PendingChildRequest): RequestId {
  return pending.answerId ?? pending.clientId;
}

/** A request the child sent to a session, waiting for the client's answer. */
interface PendingServerRequest {
  session: ServerSession;
  childId: RequestId;
  /** The client's request it was made in (it went on that request's stream), if one was running. */
  relatedRequestId?: RequestId;
  /** The child's id as it wrote it, when JSON would write its value otherwise (`idSpelling`). */
  writtenChildId?: RequestId;
}

/**
 * The client's request a request of the child's was made in, while it still runs: what is said of the
 * child's request (its cancellation) goes on that request's stream, as the request did.
 */
function runningRequestOf(pending: PendingServerRequest): RequestId | undefined {
  const related = pending.relatedRequestId;
  return related !== undefined && pending.session.isInFlight(related) ? related : undefined;
}

/** Client capability that a server→client request needs, by method. */
const REQUIRED_CAPABILITY: Record<string, string> = {
  "sampling/createMessage": "sampling",
  "elicitation/create": "elicitation",
  "roots/list": "roots",
};

/** The error every request gets while the child is not running. */
function notRunningError(name: string, reason: string): { code: number; message: string } {
  return { code: ErrorCode.ConnectionClosed, message: `MCP server "${name}" is not running (${reason})` };
}

/**
 * A client's request or answer, `json` its text on one line, as it goes to the child: that text with only
 * its id, at `span` (from `clientRequestIdSpan`), replaced by `newId` (a large one as its `bytes`, not
 * encoded again), where that is safe; else undefined, and the message is serialized anew.
 */
function withNewId(
  json: string,
  bytes: Uint8Array<ArrayBuffer> | undefined,
  newId: RequestId,
  span: IdSpan | undefined,
): JsonText | LinePieces | undefined {
  if (span === undefined) return undefined;
  return (bytes === undefined ? undefined : lineWithId(bytes, json, span, newId)) ??
    withIdAt(json, span, newId);
}

/** Where a request's progress token stands. */
const PROGRESS_TOKEN_PATH = ["params", "_meta", "progressToken"];
/** Where a progress notification's token stands. */
const PROGRESS_PATH = ["params", "progressToken"];
/** Where a cancellation names its request. */
const CANCELLED_PATH = ["params", "requestId"];

/**
 * A client's request with a progress token `token`, `json` its text on one line, as it goes to the child:
 * that text with only its id (at `idSpan`, from `clientRequestIdSpan`) and its token replaced by
 * `proxyId`, where both can be read one way only, and the token as the client wrote it when JSON would
 * write its value otherwise (see `idAsWritten`); else undefined.
 */
function withNewIdAndToken(
  json: string,
  idSpan: IdSpan | undefined,
  proxyId: number,
  token: RequestId,
): { line: string; writtenToken: RequestId | undefined } | undefined {
  const tokenSpan = idSpan === undefined ? undefined : memberSpan(json, PROGRESS_TOKEN_PATH);
  if (idSpan === undefined || tokenSpan == null) return undefined;
  const text = String(proxyId);
  return {
    line: withSpansReplaced(json, [[idSpan, text], [tokenSpan, text]]),
    writtenToken: idAsWritten(json, tokenSpan, token),
  };
}

/**
 * A client's notification, `json` its text on one line, as it goes to the child: that text, with the
 * member at `path` replaced by `value` when given, where it reads one way only (`readsOneWay`); else
 * undefined. A member named twice is read by one parser and ignored by another, and the child must read
 * the method (and a cancellation the request) the proxy saw.
 */
function clientNotificationLine(json: string, path?: readonly string[], value?: unknown): string | undefined {
  if (!readsOneWay(json)) return undefined;
  return path === undefined ? json : withMemberReplaced(json, path, value);
}

/**
 * A line of the child, a message whose id is `id`, with only that id replaced by `newId`: found at either
 * end where serializers put it, when the line names no other `"id"` (nor spells a name with an escape);
 * else read member by member; undefined when the text cannot be read one way only.
 */
function childLineWithId(line: string, id: RequestId, newId: RequestId): string | undefined {
  const span = idSpanAtAnEnd(line, id);
  // The last member is the one a parser reads. The first (as the Python SDK writes it) may have a second
  // after it: then the line is read member by member (found by QA: the first was replaced, and a client
  // that reads the last of two, left in the middle, read the proxy's own id).
  if (span !== undefined && (isLastMember(line, span) || !mayNameIdTwice(line, id))) {
    return withIdAt(line, span, newId);
  }
  return withMemberReplaced(line, ["id"], newId);
}

/**
 * `message` to be serialized anew with some member changed, when that member cannot be replaced in its
 * text `json`: read again from that text so that every number in it keeps its value and spelling.
 */
function reread<T extends JsonRpcMessage>(message: T, json: string | undefined): T {
  return json === undefined ? message : parseLosslesslyOr(json, message);
}

/**
 * A notification with `params[name]` set to `value`, to go on with `replaced`: its text `original` with that
 * value replaced in it; or, without such a text, read again from `original` (every number as written).
 */
function withParam<T extends JsonRpcNotification>(
  message: T,
  original: string | undefined,
  replaced: string | undefined,
  name: string,
  value: unknown,
): T {
  const exact = replaced === undefined ? reread(message, original) : message;
  return { ...exact, params: { ...exact.params, [name]: value } };
}

/** One stdio MCP server and the sessions that share it. See the module documentation. */
export class SharedServer implements SessionSource {
  readonly name: string;
  readonly #sendToChild: (message: JsonRpcMessage, json?: JsonText | LinePieces) => void;
  readonly #logger: Logger;
  readonly #supportedProtocolVersions: readonly string[];
  readonly #onLastSessionClosed: (() => void) | undefined;
  readonly #requestTimeoutMs: number;
  readonly #childBacklog: SharedServerOptions["childBacklog"];
  /** Set while requests are refused for the child's backlog: said once, not for each. */
  #backlogSaid = false;
  /**
   * `--request-timeout`: the proxy ids of the requests it applies to, on one timer (a `setTimeout` and
   * `clearTimeout` per request cost about 10 µs of each call's latency).
   */
  readonly #timeouts: DelayQueue<number> | undefined;
  /** `--request-timeout` for the child's own requests to clients, by their proxy ids. */
  readonly #serverRequestTimeouts: DelayQueue<number> | undefined;
  readonly #sessions = new Set<ServerSession>();
  readonly #pendingChildRequests = new Map<number, PendingChildRequest>();
  readonly #pendingServerRequests = new Map<number, PendingServerRequest>();
  /** Sessions subscribed to each resource URI; the child is subscribed while a set is not empty. */
  readonly #subscribers = new Map<string, Set<ServerSession>>();
  /** The `resources/subscribe` that is subscribing the child to each URI, while it runs. */
  readonly #subscribing = new Map<string, PendingChildRequest>();
  #nextChildRequestId = 1;
  #nextServerRequestId = 1;
  #nextSessionSeq = 1;
  /** Grows with every client message: orders sessions by recent activity. */
  #clock = 0;
  #initializeResult: Record<string, unknown> | undefined;
  /** The first successful `initialize`'s params: replayed to a restarted child. */
  #initializeParams: Record<string, unknown> | undefined;
  /** The params of the last `logging/setLevel` the child took: a restarted child gets it again. */
  #logLevelParams: Record<string, unknown> | undefined;
  #initializeInFlight = false;
  /**
   * The `initialize` in flight took longer than `--request-timeout`: its client and those waiting with it
   * got an error, and later ones get it at once, until the child answers (its result is then cached).
   */
  #initializeOverdue = false;
  /** Without `--request-timeout`: the limit of the `initialize` in flight (see `reinitializeTimeoutMs`). */
  #initializeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The proxy id of the `initialize` that {@link #initializeTimer} limits. */
  #initializeLimited: number | undefined;
  /** Later sessions' `initialize` requests, waiting for the first one's answer; `replyId` as in `forwardRequest`. */
  #initializeWaiters: { session: ServerSession; request: JsonRpcRequest; replyId: RequestId }[] = [];
  #initializedNotificationSent = false;
  /**
   * Requests of stateless sessions that came before any client initialized the child: they wait for the
   * proxy's own `initialize` (see `#initializeForStateless`).
   */
  #waitingForOwnInitialize: {
    session: ServerSession;
    request: JsonRpcRequest;
    replyId: RequestId;
    json: string | undefined;
    bytes: Uint8Array<ArrayBuffer> | undefined;
  }[] = [];
  #downReason: string | undefined;
  readonly #onRefusedAfterRestart: ((reason: string) => void) | undefined;
  /** How long a restarted child may take to answer the replayed `initialize` (see `childStarted`). */
  readonly #reinitializeTimeoutMs: number;
  #reinitializeTimer: ReturnType<typeof setTimeout> | undefined;
  /** How to cut short each answer streaming to its client now (see `streamLargeAnswer`). */
  readonly #streaming = new Set<(reason: string) => void>();
  readonly #modern: boolean;
  /** A modern child's revision, as its `server/discover` named it (see {@link discover}). */
  #modernVersion = FIRST_MODERN_PROTOCOL_VERSION;
  #discoveredVersions: readonly string[] = [];
  readonly #onToolsListed: ((result: unknown) => void) | undefined;

  constructor(options: SharedServerOptions) {
    this.name = options.name;
    this.#modern = options.modern ?? false;
    this.#onToolsListed = options.onToolsListed;
    this.#sendToChild = options.sendToChild;
    this.#logger = options.logger;
    this.#supportedProtocolVersions = options.supportedProtocolVersions;
    this.#onLastSessionClosed = options.onLastSessionClosed;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 0;
    this.#childBacklog = options.childBacklog;
    this.#onRefusedAfterRestart = options.onRefusedAfterRestart;
    this.#reinitializeTimeoutMs = options.reinitializeTimeoutMs ?? REINITIALIZE_TIMEOUT_MS;
    this.#serverRequestTimeouts = this.#requestTimeoutMs > 0
      ? new DelayQueue(this.#requestTimeoutMs, (proxyId) => this.#serverRequestTimedOut(proxyId))
      : undefined;
    this.#timeouts = this.#requestTimeoutMs > 0
      ? new DelayQueue(this.#requestTimeoutMs, (proxyId) => this.#timedOut(proxyId))
      : undefined;
  }

  /** Number of open sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Number of requests forwarded to the child and not yet answered. */
  get pendingRequestCount(): number {
    return this.#pendingChildRequests.size;
  }

  /**
   * True while the child has more than one request under way. A request counts from just before it is
   * sent: while it is being sent, true means that others are under way too.
   */
  get childIsBusy(): boolean {
    return this.#pendingChildRequests.size > 1;
  }

  /** Opens a session whose messages reach the client through `peer`. */
  openSession(peer: SessionPeer, options: SessionOptions): ServerSession {
    const session = new ServerSession(this, peer, this.#nextSessionSeq++, options);
    this.#sessions.add(session);
    return session;
  }

  /**
   * The child is gone: every request waiting for it is answered with an error at once, and new requests
   * are refused from now on.
   */
  childStopped(reason: string): void {
    this.#downReason = reason;
    clearTimeout(this.#reinitializeTimer);
    // An answer on its way ends here too, with an error where the transport can still give one (at
    // shutdown, before the streams close; when the child dies, before its stdout's end says so).
    for (const cutShort of [...this.#streaming]) cutShort(reason);
    // The child's requests to clients first: their cancellations go on the streams of the calls they were
    // made in, which end with the calls' error answers below.
    for (const [proxyId, pending] of this.#pendingServerRequests) {
      this.#dropServerRequest(proxyId, pending);
      pending.session.deliver({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: proxyId, reason: `MCP server "${this.name}" stopped` },
      }, runningRequestOf(pending));
    }
    const error = notRunningError(this.name, reason);
    for (const [proxyId, pending] of this.#pendingChildRequests) {
      this.#dropPending(proxyId);
      if (pending.answerOnStop) pending.onAnswer?.(errorResponse(proxyId, error.code, error.message), true);
      if (pending.subscribeUri !== undefined) this.#subscribeSettled(pending, { error });
      pending.session?.forgetRequest(pending.clientId);
      pending.session?.deliver(
        errorResponse(writtenId(pending), error.code, error.message),
        pending.clientId,
      );
    }
    // No request waits any more: the timer stops with the child rather than go off for nothing.
    this.#timeouts?.clear();
    clearTimeout(this.#initializeTimer);
    for (const { session, request, replyId } of this.#initializeWaiters) {
      session.deliver(errorResponse(replyId, error.code, error.message), request.id);
    }
    this.#initializeWaiters = [];
    for (const { session, request, replyId } of this.#waitingForOwnInitialize.splice(0)) {
      session.deliver(errorResponse(replyId, error.code, error.message), request.id);
    }
    // The result stays cached: sessions that arrive while the child restarts still get an answer.
    this.#initializeInFlight = false;
    this.#initializeOverdue = false;
  }

  /**
   * The child that stopped is not restarted (restarts off): a new session's `initialize` is refused
   * too, not answered from the cache, as no call of that session could be served.
   */
  childGoneForGood(): void {
    this.#initializeResult = undefined;
  }

  /**
   * A new child runs in place of one that stopped. If the old one had been initialized, the new one is
   * initialized the same way (the first client's `initialize`, `notifications/initialized`, and every
   * subscription still held), and the sessions carry on; until its answer, requests are refused.
   */
  childStarted(): void {
    if (this.#modern) {
      this.#discoverAfterRestart();
      return;
    }
    if (this.#initializeParams === undefined) {
      this.#downReason = undefined;
      return;
    }
    this.#downReason = "it is being initialized again after a restart";
    // Not `--request-timeout`: the child's start counts too, and one that is slow to initialize would
    // be restarted for ever (found by review).
    const limitMs = this.#reinitializeTimeoutMs;
    const proxyId = this.#sendOwnRequest("initialize", this.#initializeParams, (response) => {
      clearTimeout(this.#reinitializeTimer);
      if (response.result === undefined) {
        this.#downReason = `refused to initialize after a restart: ${response.error?.message}`;
        this.#onRefusedAfterRestart?.(this.#downReason);
        return;
      }
      this.#initializeResult = response.result;
      this.#downReason = undefined;
      if (this.#initializedNotificationSent) {
        this.#sendToChild({ jsonrpc: "2.0", method: "notifications/initialized" });
      }
      // Its clients' log level too (found by QA: a restarted child logged at its own default).
      if (this.#logLevelParams !== undefined) this.#sendOwnRequest("logging/setLevel", this.#logLevelParams);
      for (const uri of this.#subscribers.keys()) this.#sendOwnRequest("resources/subscribe", { uri });
      this.#logger.info("server {name} was initialized again; its sessions carry on", { name: this.name });
    }, true)!;
    // One that never answers is as useless as one that refuses (found by review: it stayed "running").
    this.#reinitializeTimer = setTimeout(() => {
      if (!this.#pendingChildRequests.has(proxyId)) return;
      this.#dropPending(proxyId);
      this.#downReason = `did not answer initialize within ${limitMs / 1000} s after a restart`;
      this.#onRefusedAfterRestart?.(this.#downReason);
    }, limitMs);
  }

  /**
   * A modern child started anew is asked `server/discover` (and its tools listed) before any client's
   * request reaches it, as the first one was: a child that keeps the era of its first message must not
   * get a client's first. One that does not answer as a server of the revision is restarted.
   */
  #discoverAfterRestart(): void {
    const reason = "it is being asked server/discover again after a restart";
    this.#downReason = reason;
    this.discover(this.#reinitializeTimeoutMs).then((outcome) => {
      if (this.#downReason !== reason) return; // Stopped again meanwhile.
      if (outcome.served) {
        this.#downReason = undefined;
        this.#logger.info("server {name} serves revision {version} again after a restart", {
          name: this.name,
          version: outcome.version,
        });
        return;
      }
      this.#downReason =
        `did not answer as a server of revision ${this.#modernVersion} after a restart: ${outcome.why}`;
      this.#onRefusedAfterRestart?.(this.#downReason);
    });
  }

  /**
   * Routes one message the child wrote; `line`, when given, is its JSON text as the child wrote it (one
   * line), which goes on unchanged where the message does, or with only its id replaced.
   */
  handleChildMessage(message: JsonRpcMessage, line?: string): void {
    // JSON allows a carriage return between tokens; an SSE stream would take it for a line break.
    // In valid JSON a raw one is white space (in a string it is escaped): a space means the same.
    if (line?.includes("\r")) line = line.replaceAll("\r", " ");
    if (isRequest(message)) this.#routeServerRequest(message, line);
    else if (isNotification(message)) this.#routeServerNotification(message, line);
    else this.#routeChildResponse(message as JsonRpcResponse, line);
  }

  // ---- client → child -------------------------------------------------------------------------

  /** Called by {@link ServerSession.handleClientMessage} for requests; `json` and `bytes` as there. */
  forwardRequest(
    session: ServerSession,
    request: JsonRpcRequest,
    json: string | undefined,
    bytes?: Uint8Array<ArrayBuffer>,
  ): void {
    session.touch(++this.#clock);
    // Where the id stands in the text, and how the client spelled it: every answer carries it back so.
    const idSpan = json === undefined ? undefined : clientRequestIdSpan(json, request.id);
    // A text that reads two ways is written anew, but its id, where it is the one read, still comes back
    // as written.
    const spelled = json === undefined
      ? undefined
      : idSpan === undefined
      ? idSpelling(json, request.id)
      : idAsWritten(json, idSpan, request.id);
    const replyId = spelled ?? request.id;
    // A notification method sent as a request would reach the child with its ids unmapped (a cancellation
    // could hit another session's call): it is no valid request, so it is refused here.
    if (request.method.startsWith("notifications/")) {
      session.deliver(
        errorResponse(
          replyId,
          ErrorCode.InvalidRequest,
          `Invalid Request: ${request.method} is a notification`,
        ),
        request.id,
      );
      return;
    }
    if (request.method === "initialize" && !this.#modern) {
      session.recordInitialize(request.id, request.params);
      if (this.#initializeResult !== undefined) {
        this.#answerInitialize(session, request, replyId, this.#initializeResult);
        return;
      }
      if (this.#initializeInFlight) {
        if (this.#initializeOverdue) {
          const { code, message } = this.#timeoutError("initialize");
          session.deliver(errorResponse(replyId, code, message), request.id);
        } else {
          this.#initializeWaiters.push({ session, request, replyId });
        }
        return;
      }
    }
    if (this.#downReason !== undefined) {
      const error = notRunningError(this.name, this.#downReason);
      session.deliver(errorResponse(replyId, error.code, error.message), request.id);
      return;
    }
    if (
      session.stateless && this.#initializeResult === undefined && request.method !== "initialize" &&
      !this.#modern
    ) {
      this.#initializeForStateless(session, request, replyId, json, bytes);
      return;
    }
    if (this.#refusedForBacklog(session, request, replyId)) return;
    if (
      (request.method === "resources/subscribe" || request.method === "resources/unsubscribe") &&
      !this.#modern
    ) {
      if (this.#answeredSubscription(session, request, replyId)) return;
    }
    const proxyId = this.#nextChildRequestId++;
    const isInitialize = request.method === "initialize" && !this.#modern;
    if (isInitialize) this.#initializeInFlight = true;
    const pending: PendingChildRequest = { session, clientId: request.id, isInitialize };
    if (spelled !== undefined) pending.answerId = spelled;
    if (this.#modern) {
      if (request.method === "tools/list" && this.#onToolsListed !== undefined) pending.listsTools = true;
    } else if (request.method === "resources/subscribe") {
      pending.subscribeUri = request.params?.uri as string;
      if (typeof pending.subscribeUri === "string") this.#subscribing.set(pending.subscribeUri, pending);
    }
    if (isInitialize) pending.initializeParams = request.params ?? {};
    if (request.method === "logging/setLevel" && !this.#modern) {
      // Without its `_meta`: a progress token of a request long done means nothing to a new child.
      const { _meta: _, ...params } = request.params ?? {};
      pending.logLevelParams = params;
    }
    let forwarded: JsonRpcRequest = request;
    let line: JsonText | LinePieces | undefined;
    const progressToken = (request.params?._meta as Record<string, unknown> | undefined)?.progressToken;
    if (
      typeof progressToken === "string" || typeof progressToken === "number" || isExactInteger(progressToken)
    ) {
      const replaced = json === undefined
        ? undefined
        : withNewIdAndToken(json, idSpan, proxyId, progressToken);
      pending.clientProgressToken = replaced?.writtenToken ?? progressToken;
      line = replaced?.line;
      const exact = line === undefined ? reread(request, json) : request;
      const meta = exact.params?._meta as Record<string, unknown>;
      forwarded = { ...exact, params: { ...exact.params, _meta: { ...meta, progressToken: proxyId } } };
    } else if (json !== undefined) {
      line = withNewId(json, bytes, proxyId, idSpan);
      if (line === undefined) forwarded = reread(request, json);
    }
    forwarded = { ...forwarded, id: proxyId };
    // A subscription runs until its client leaves: no answer is overdue.
    if (!(this.#modern && request.method === "subscriptions/listen")) this.#timeouts?.add(proxyId);
    if (pending.isInitialize) this.#limitInitialize(proxyId);
    this.#pendingChildRequests.set(proxyId, pending);
    session.rememberRequest(request.id, proxyId, this.#clock);
    this.#sendToChild(forwarded, line);
  }

  /**
   * Whether `request` is refused, with an error answer, because the child has not read what waits for it
   * beyond {@link SharedServerOptions.childBacklog}'s limit: a child that stopped reading its input.
   */
  #refusedForBacklog(session: ServerSession, request: JsonRpcRequest, replyId: RequestId): boolean {
    const backlog = this.#childBacklog;
    if (backlog === undefined) return false;
    const waiting = backlog.bytes();
    if (waiting <= backlog.maxBytes) {
      this.#backlogSaid = false;
      return false;
    }
    if (!this.#backlogSaid) {
      this.#backlogSaid = true;
      this.#logger.error(
        "server {name} is behind on its input: {bytes} bytes wait for it (limit {max}); requests refused until it catches up",
        {
          name: this.name,
          bytes: waiting,
          max: backlog.maxBytes,
        },
      );
    }
    // It may read, only slower than a burst of large requests comes: the client may try again later.
    const message = `MCP server "${this.name}" is behind on its input (${waiting} bytes wait for it, over ` +
      `the limit of ${backlog.maxBytes}: it reads slower than requests come, or not at all); try again later`;
    session.deliver(errorResponse(replyId, ErrorCode.InternalError, message), request.id);
    return true;
  }

  /**
   * A stateless session sends no `initialize`, and a child must have one (and `notifications/initialized`)
   * before any other request: servers built on the Python SDK fail otherwise. Until a client has
   * initialized the child, the proxy does, as the Python mcp-proxy does at its start, with the latest
   * protocol revision and no capabilities; `request` waits for it, then goes on as usual. A restarted
   * child is initialized again the same way.
   */
  #initializeForStateless(
    session: ServerSession,
    request: JsonRpcRequest,
    replyId: RequestId,
    json: string | undefined,
    bytes: Uint8Array<ArrayBuffer> | undefined,
  ): void {
    if (this.#initializeInFlight && this.#initializeOverdue) {
      const { code, message } = this.#timeoutError("initialize");
      session.deliver(errorResponse(replyId, code, message), request.id);
      return;
    }
    this.#waitingForOwnInitialize.push({ session, request, replyId, json, bytes });
    if (this.#initializeInFlight) return;
    this.#initializeInFlight = true;
    const params = {
      protocolVersion: this.#supportedProtocolVersions[0],
      capabilities: {},
      clientInfo: { name: "mcp-proxy", version: VERSION },
    };
    this.#logger.info("server {name}: initialized by mcp-proxy itself, for stateless requests", {
      name: this.name,
    });
    const proxyId = this.#sendOwnRequest("initialize", params, (response) => {
      if (response.result !== undefined) {
        this.#initializeParams ??= params;
        // Also when no request waits any more (they timed out): the child hears that it is initialized
        // before the next one.
        if (!this.#initializedNotificationSent) {
          this.#initializedNotificationSent = true;
          this.#sendToChild({ jsonrpc: "2.0", method: "notifications/initialized" });
        }
      }
      this.#settleInitialize(response);
    })!;
    // Under `--request-timeout` like a client's initialize (see `#timedOut`): the requests waiting for it
    // get an error in time, and it goes on.
    if (this.#pendingChildRequests.has(proxyId)) {
      this.#timeouts?.add(proxyId);
      this.#limitInitialize(proxyId);
    }
  }

  /**
   * Without `--request-timeout`, the `initialize` `proxyId` still gets a limit, `reinitializeTimeoutMs`
   * (found by QA: a child that never answered the first held every client for ever, `/health` saying ok).
   */
  #limitInitialize(proxyId: number): void {
    if (this.#timeouts !== undefined) return;
    clearTimeout(this.#initializeTimer);
    this.#initializeLimited = proxyId;
    this.#initializeTimer = setTimeout(() => this.#initializeTimedOut(proxyId), this.#reinitializeTimeoutMs);
  }

  /**
   * Whether the child has not answered the first `initialize` in time: the sessions that wait for it, and
   * those that come meanwhile, get an error; it goes on, and its answer serves the sessions after it.
   */
  get initializeOverdue(): boolean {
    return this.#initializeInFlight && this.#initializeOverdue;
  }

  /**
   * Counts subscriptions per URI, so that the child is subscribed once for all sessions and unsubscribed
   * when the last one leaves. Returns true when the request was answered here; false when it must go to
   * the child (the first subscriber, the last unsubscriber, or a request without a URI).
   */
  #answeredSubscription(session: ServerSession, request: JsonRpcRequest, replyId: RequestId): boolean {
    const uri = request.params?.uri;
    if (typeof uri !== "string") return false;
    const subscribers = this.#subscribers.get(uri);
    const answerHere = () => session.deliver(resultResponse(replyId, {}), request.id);
    if (request.method === "resources/subscribe") {
      session.subscriptions.add(uri);
      if (subscribers !== undefined) {
        subscribers.add(session);
        // While the child is being subscribed, its answer is this one's too: it may yet refuse.
        const subscribing = this.#subscribing.get(uri);
        if (subscribing !== undefined) (subscribing.joined ??= []).push({ session, request, replyId });
        else answerHere();
        return true;
      }
      this.#subscribers.set(uri, new Set([session]));
      return false;
    }
    if (this.#unsubscribe(session, uri)) return false;
    answerHere();
    return true;
  }

  /**
   * The end of a `resources/subscribe` sent to the child (`pending`): its answer, or the error that ended
   * it. The subscriptions that joined it while it ran get the same answer; after an error none of them
   * holds, as the child is not subscribed.
   */
  #subscribeSettled(pending: PendingChildRequest, response: Pick<JsonRpcResponse, "result" | "error">): void {
    const uri = pending.subscribeUri!;
    if (this.#subscribing.get(uri) === pending) this.#subscribing.delete(uri);
    const joined = pending.joined ?? [];
    if (response.error !== undefined) {
      if (pending.session !== undefined) this.#unsubscribe(pending.session, uri);
      for (const { session } of joined) this.#unsubscribe(session, uri);
    }
    for (const { session, request, replyId } of joined) {
      session.deliver(
        response.error !== undefined
          ? { jsonrpc: "2.0", id: replyId, error: response.error }
          : resultResponse(replyId, response.result ?? {}),
        request.id,
      );
    }
  }

  /**
   * A `resources/subscribe` (`pending`) whose session cancelled it or closed: true when it goes on at the
   * child, for other sessions that joined it still hold the subscription, and answers only them; false
   * when it is to be dropped (and cancelled at the child) like any request. Joined requests of sessions
   * that left the subscription since are then answered with an error: none is left without an answer.
   */
  #subscribeGoesOn(pending: PendingChildRequest): boolean {
    const uri = pending.subscribeUri!;
    if (pending.joined !== undefined && (this.#subscribers.get(uri)?.size ?? 0) > 0) {
      pending.session = undefined;
      return true;
    }
    if (this.#subscribing.get(uri) === pending) this.#subscribing.delete(uri);
    const message = "mcp-proxy: the subscription ended before the server answered (its sessions left it)";
    for (const { session, request, replyId } of pending.joined ?? []) {
      session.deliver(errorResponse(replyId, ErrorCode.InternalError, message), request.id);
    }
    return false;
  }

  /** Removes `session` from the subscribers of `uri`; returns true when nobody is subscribed any more. */
  #unsubscribe(session: ServerSession, uri: string): boolean {
    session.subscriptions.delete(uri);
    const subscribers = this.#subscribers.get(uri);
    if (subscribers === undefined || !subscribers.delete(session) || subscribers.size > 0) return false;
    this.#subscribers.delete(uri);
    return true;
  }

  /**
   * Asks a modern child (see {@link SharedServerOptions.modern}) `server/discover`, within `limitMs`. When it
   * names a revision of the stateless era, its tools are listed too (every page, up to
   * {@link MAX_TOOL_PAGES}, each within `toolsLimitMs`, to `onToolsListed`), which also settles
   * the era of a child that keeps the era of its first request (the SDK's `serveStdio`) before any client's
   * request reaches it; the first page is waited for.
   */
  async discover(limitMs: number, toolsLimitMs = TOOLS_LIST_LIMIT_MS): Promise<DiscoverOutcome> {
    const outcome = await this.#discoverOnce(limitMs, toolsLimitMs);
    // Kept for `discoveredVersions`; a stop is no answer: what was known stays.
    if (outcome.served) this.#discoveredVersions = outcome.supportedVersions;
    else if (!outcome.stopped) this.#discoveredVersions = [];
    return outcome;
  }

  async #discoverOnce(limitMs: number, toolsLimitMs: number): Promise<DiscoverOutcome> {
    const asked = await this.#askWithin(
      "server/discover",
      { _meta: ownEnvelope(this.#modernVersion) },
      limitMs,
    );
    if (asked.stopped) {
      return { served: false, why: `stopped while asked server/discover (${asked.why})`, stopped: true };
    }
    const response = asked.response;
    if (response === undefined) {
      return {
        served: false,
        why: `no answer to server/discover within ${limitMs / 1000} s`,
        stopped: false,
      };
    }
    if (response.error !== undefined) {
      const { code, message } = response.error;
      return { served: false, why: `server/discover: error ${code} ${message}`, stopped: false };
    }
    const versions = (response.result as { supportedVersions?: unknown } | undefined)?.supportedVersions;
    const supported = Array.isArray(versions)
      ? versions.filter((version): version is string => typeof version === "string")
      : [];
    const modern = supported.find(isModernVersion);
    if (modern === undefined) {
      return {
        served: false,
        why: "its server/discover names no revision of 2026-07-28 or later",
        stopped: false,
      };
    }
    this.#modernVersion = supported.includes(this.#modernVersion) ? this.#modernVersion : modern;
    const listed = await this.#listTools(this.#modernVersion, toolsLimitMs);
    if (listed.stopped) {
      return { served: false, why: `stopped while its tools were listed (${listed.why})`, stopped: true };
    }
    return { served: true, version: this.#modernVersion, supportedVersions: supported };
  }

  /** The revisions a modern child named in its last `server/discover` that named one of the stateless era. */
  get discoveredVersions(): readonly string[] {
    return this.#discoveredVersions;
  }

  /**
   * Lists a modern child's tools, from `cursor` on; resolves with the first page's answer (undefined when
   * none came in time), the next pages following by themselves.
   */
  async #listTools(
    version: string,
    limitMs: number,
    cursor?: string,
    page = 1,
  ): Promise<{ response?: JsonRpcResponse; stopped: false } | { stopped: true; why: string }> {
    const params: Record<string, unknown> = { _meta: ownEnvelope(version) };
    if (cursor !== undefined) params.cursor = cursor;
    const asked = await this.#askWithin("tools/list", params, limitMs);
    if (!asked.stopped && asked.response === undefined) {
      this.#logger.warn("server {name} did not answer mcp-proxy's tools/list within {seconds} s", {
        name: this.name,
        seconds: limitMs / 1000,
      });
    }
    if (asked.stopped || asked.response?.result === undefined) return asked;
    try {
      this.#onToolsListed?.(asked.response.result);
    } catch (error) {
      this.#logger.error("server {name}: reading its tools failed: {error}", { name: this.name, error });
    }
    const next = (asked.response.result as { nextCursor?: unknown }).nextCursor;
    if (typeof next === "string" && page < MAX_TOOL_PAGES) this.#listTools(version, limitMs, next, page + 1);
    return asked;
  }

  /**
   * A request of the proxy's own, even while the child is down to clients: resolves with its answer, with
   * none when `limitMs` passed first (it is then forgotten), or with why the child stopped first.
   */
  #askWithin(
    method: string,
    params: Record<string, unknown>,
    limitMs: number,
  ): Promise<{ response?: JsonRpcResponse; stopped: false } | { stopped: true; why: string }> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#dropPending(proxyId);
        resolve({ stopped: false });
      }, limitMs);
      const proxyId = this.#sendOwnRequest(method, params, (response, stopped) => {
        clearTimeout(timer);
        resolve(
          stopped
            ? { stopped: true, why: response.error?.message ?? "stopped" }
            : { response, stopped: false },
        );
      }, true)!;
      this.#pendingChildRequests.get(proxyId)!.answerOnStop = true;
    });
  }

  /**
   * Sends a request of the proxy's own to the child; `onAnswer` gets the answer (else it is dropped).
   * Only sent while the child is up, unless `evenIfDown` (the re-initialization of a restarted child).
   */
  #sendOwnRequest(
    method: string,
    params: Record<string, unknown>,
    onAnswer?: (response: JsonRpcResponse, stopped?: boolean) => void,
    evenIfDown = false,
  ): number | undefined {
    if (this.#downReason !== undefined && !evenIfDown) return undefined;
    const proxyId = this.#nextChildRequestId++;
    this.#pendingChildRequests.set(proxyId, {
      session: undefined,
      clientId: proxyId,
      isInitialize: method === "initialize",
      onAnswer,
    });
    this.#sendToChild({ jsonrpc: "2.0", id: proxyId, method, params });
    return proxyId;
  }

  /** Answers the child's request `id` (as it wrote it) with an error saying `reason`: it cannot go on. */
  refuseChildRequest(id: RequestId, reason: string): void {
    this.#logger.warn("{server} sent a request that cannot be passed on ({reason}); answered with an error", {
      server: this.name,
      reason,
    });
    this.#sendToChild(errorResponse(id, ErrorCode.InternalError, `mcp-proxy: ${reason}`));
  }

  /**
   * The child's answer to request `proxyId` cannot be used (over `--max-line-size`, not valid JSON-RPC): it
   * counts as an error answer saying `reason`, for the proxy's own requests and `initialize` (whose waiters
   * would otherwise wait for ever: found by review) as for any. Returns false when no such request waits.
   */
  failRequest(proxyId: number, reason: string): boolean {
    if (!this.#pendingChildRequests.has(proxyId)) return false;
    this.#routeChildResponse(
      errorResponse(proxyId, ErrorCode.InternalError, `mcp-proxy: ${reason}`),
      undefined,
    );
    return true;
  }

  /** Forgets a waiting request, and its time limit. */
  #dropPending(proxyId: number): void {
    this.#timeouts?.delete(proxyId);
    if (proxyId === this.#initializeLimited) clearTimeout(this.#initializeTimer);
    this.#pendingChildRequests.delete(proxyId);
  }

  /** The error of a request whose answer did not come within `--request-timeout`. */
  #timeoutError(what = "no answer"): { code: number; message: string } {
    if (what === "initialize" && this.#timeouts === undefined) {
      const seconds = this.#reinitializeTimeoutMs / 1000;
      return {
        code: ErrorCode.RequestTimeout,
        message: `mcp-proxy: the server did not answer initialize within ${seconds} s; it may yet, for the ` +
          "sessions that come after",
      };
    }
    const seconds = this.#requestTimeoutMs / 1000;
    return {
      code: ErrorCode.RequestTimeout,
      message: what === "no answer"
        ? `mcp-proxy: no answer within ${seconds} s (--request-timeout)`
        : `mcp-proxy: the server did not answer ${what} within ${seconds} s (--request-timeout)`,
    };
  }

  /**
   * A request of the child's that its client did not answer within `--request-timeout`: the child gets an
   * error (found by QA: it waited for ever, with nothing said), the client a cancellation.
   */
  #serverRequestTimedOut(proxyId: number): void {
    const pending = this.#pendingServerRequests.get(proxyId);
    if (pending === undefined) return;
    this.#dropServerRequest(proxyId, pending);
    const seconds = this.#requestTimeoutMs / 1000;
    this.#logger.warn("{session} did not answer a request of {name} within {seconds} s", {
      session: pending.session.label,
      name: this.name,
      seconds,
    });
    if (this.#downReason === undefined) {
      this.#sendToChild(errorResponse(
        pending.writtenChildId ?? pending.childId,
        ErrorCode.RequestTimeout,
        `mcp-proxy: the client did not answer within ${seconds} s (--request-timeout)`,
      ));
    }
    pending.session.deliver({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: proxyId, reason: `no answer within ${seconds} s (--request-timeout)` },
    }, runningRequestOf(pending));
  }

  /** Forgets a request of the child's to a client (answered, cancelled or given up), and its time limit. */
  #dropServerRequest(proxyId: number, pending: PendingServerRequest): void {
    this.#pendingServerRequests.delete(proxyId);
    this.#serverRequestTimeouts?.delete(proxyId);
    pending.session.forgetServerRequest(proxyId);
  }

  /** The `initialize` `proxyId` was not answered in time: its clients hear of it, but it goes on. */
  #initializeTimedOut(proxyId: number): void {
    const pending = this.#pendingChildRequests.get(proxyId);
    if (pending === undefined || !pending.isInitialize) return;
    // The sessions that come next may have its answer.
    this.#logger.warn("server {name} did not answer initialize within {seconds} s", {
      name: this.name,
      seconds: this.#initializeLimitMs() / 1000,
    });
    const { code, message } = this.#timeoutError("initialize");
    pending.session?.forgetRequest(pending.clientId);
    pending.session?.deliver(errorResponse(writtenId(pending), code, message), pending.clientId);
    pending.session = undefined;
    for (const { session, request, replyId } of this.#initializeWaiters.splice(0)) {
      session.deliver(errorResponse(replyId, code, message), request.id);
    }
    for (const { session, request, replyId } of this.#waitingForOwnInitialize.splice(0)) {
      session.deliver(errorResponse(replyId, code, message), request.id);
    }
    this.#initializeOverdue = true;
  }

  /** How long an `initialize` is waited for: `--request-timeout`, else `reinitializeTimeoutMs`. */
  #initializeLimitMs(): number {
    return this.#timeouts !== undefined ? this.#requestTimeoutMs : this.#reinitializeTimeoutMs;
  }

  #timedOut(proxyId: number): void {
    const pending = this.#pendingChildRequests.get(proxyId);
    if (pending === undefined) return;
    const seconds = this.#requestTimeoutMs / 1000;
    if (pending.isInitialize) return this.#initializeTimedOut(proxyId);
    this.#dropPending(proxyId);
    // Named by the id its client wrote (found by QA: the proxy's own id, which no client saw, was given).
    const request = pending.session === undefined
      ? "mcp-proxy's own request"
      : `request ${JSON.stringify(writtenId(pending))}`;
    this.#logger.warn(
      "server {name} did not answer {request} (id {childId} there) within {seconds} s; cancelled",
      {
        name: this.name,
        request,
        childId: proxyId,
        seconds,
      },
    );
    pending.session?.forgetRequest(pending.clientId);
    const error = this.#timeoutError();
    if (pending.subscribeUri !== undefined) this.#subscribeSettled(pending, { error });
    pending.session?.deliver(errorResponse(writtenId(pending), error.code, error.message), pending.clientId);
    if (this.#downReason === undefined) {
      this.#sendToChild({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: proxyId, reason: "mcp-proxy: request timed out" },
      });
    }
  }

  /** Called by {@link ServerSession.handleClientMessage} for notifications. */
  forwardNotification(session: ServerSession, notification: JsonRpcNotification, json?: string): void {
    session.touch(++this.#clock);
    if (notification.method === "notifications/roots/list_changed") session.rootsChangedAt = this.#clock;
    if (notification.method === "notifications/initialized") {
      if (this.#initializedNotificationSent) return;
      this.#initializedNotificationSent = true;
    } else if (notification.method === "notifications/cancelled") {
      const clientId = notification.params?.requestId as RequestId | undefined;
      const owner = clientId === undefined ? undefined : this.#cancelledRequestOwner(session, clientId);
      const proxyId = clientId === undefined ? undefined : owner?.proxyIdOf(clientId);
      if (owner === undefined || proxyId === undefined) {
        this.#logger.debug("{session}: cancellation of unknown request {id} dropped", {
          session: session.label,
          id: clientId,
        });
        return;
      }
      const pending = this.#pendingChildRequests.get(proxyId)!;
      owner.forgetRequest(clientId!);
      owner.abandon(clientId!);
      if (pending.isInitialize) {
        // An initialize must not be cancelled at the server: let it finish for the sessions that follow.
        pending.session = undefined;
        return;
      }
      if (pending.subscribeUri !== undefined) {
        // As when its session closes: the child is unsubscribed if nobody is left (it may have subscribed).
        if (this.#unsubscribe(owner, pending.subscribeUri)) {
          this.#sendOwnRequest("resources/unsubscribe", { uri: pending.subscribeUri });
        }
        if (this.#subscribeGoesOn(pending)) return;
      }
      // The client ignores any later answer, and an SDK server sends none: forget the request now.
      this.#dropPending(proxyId);
      if (this.#downReason !== undefined) return;
      const line = json === undefined ? undefined : clientNotificationLine(json, CANCELLED_PATH, proxyId);
      this.#sendToChild(withParam(notification, json, line, "requestId", proxyId), line);
      return;
    }
    if (this.#downReason !== undefined) return;
    const line = json === undefined ? undefined : clientNotificationLine(json);
    this.#sendToChild(line === undefined ? reread(notification, json) : notification, line);
  }

  /**
   * The session whose request `clientId` a cancellation from `session` names: its own; or, when `session`
   * is stateless (each POST a session of its own: an SDK client sends its cancellation in a POST of its
   * own while the call's POST stays open), the one stateless session with a request of that id running,
   * if only one has. Stateless clients cannot be told apart: one client's late cancellation may name
   * another's request of the same id (answers from the child's requests cross the same way).
   */
  #cancelledRequestOwner(session: ServerSession, clientId: RequestId): ServerSession | undefined {
    // In the stateless revision a request is cancelled by closing its stream; a cancellation sent after it
    // (as the SDK's client does) finds its request gone, and must not hit another client's of that id.
    if (session.proxyIdOf(clientId) !== undefined || !session.stateless || this.#modern) return session;
    let owner: ServerSession | undefined;
    for (const other of this.#sessions) {
      if (!other.stateless || other.proxyIdOf(clientId) === undefined) continue;
      if (owner !== undefined) return undefined;
      owner = other;
    }
    return owner;
  }

  /** Called by {@link ServerSession.handleClientMessage} for answers to the child's requests; `json` as there. */
  forwardResponse(
    session: ServerSession,
    response: JsonRpcResponse,
    json: string | undefined,
    bytes: Uint8Array<ArrayBuffer> | undefined,
  ): void {
    session.touch(++this.#clock);
    const proxyId = response.id;
    const pending = typeof proxyId === "number" ? this.#pendingServerRequests.get(proxyId) : undefined;
    // Each stateless HTTP request is a session of its own: the answer may come on another one.
    const sameClient = pending?.session === session || (pending?.session.stateless && session.stateless);
    if (pending === undefined || !sameClient) {
      this.#logger.debug("{session}: answer to unknown request {id} dropped", {
        session: session.label,
        id: proxyId,
      });
      return;
    }
    this.#dropServerRequest(proxyId as number, pending);
    if (this.#downReason === undefined) {
      const childId = pending.writtenChildId ?? pending.childId;
      const line = json === undefined
        ? undefined
        : withNewId(json, bytes, childId, clientRequestIdSpan(json, proxyId as number));
      this.#sendToChild({ ...(line === undefined ? reread(response, json) : response), id: childId }, line);
    }
  }

  /**
   * The id an answer to `session`'s request `clientId` carries, as its client wrote it: that request at
   * the child (`proxyId`), or waiting for another's `initialize` or subscription; undefined if unknown.
   */
  answerIdOf(
    session: ServerSession,
    clientId: RequestId,
    proxyId: number | undefined,
  ): RequestId | undefined {
    const pending = proxyId === undefined ? undefined : this.#pendingChildRequests.get(proxyId);
    if (pending !== undefined) return writtenId(pending);
    const waiting = (entry: { session: ServerSession; request: JsonRpcRequest }) =>
      entry.session === session && entry.request.id === clientId;
    const waiter = this.#initializeWaiters.find(waiting) ?? this.#waitingForOwnInitialize.find(waiting);
    if (waiter !== undefined) return waiter.replyId;
    for (const subscribing of this.#subscribing.values()) {
      const joined = subscribing.joined?.find(waiting);
      if (joined !== undefined) return joined.replyId;
    }
    return undefined;
  }

  /** Called by {@link ServerSession.close}: cancels what the session left running at the child. */
  sessionClosed(session: ServerSession, inFlight: Iterable<number>, serverRequests: Iterable<number>): void {
    this.#sessions.delete(session);
    for (const uri of [...session.subscriptions]) {
      if (this.#unsubscribe(session, uri)) this.#sendOwnRequest("resources/unsubscribe", { uri });
    }
    this.#initializeWaiters = this.#initializeWaiters.filter((waiter) => waiter.session !== session);
    for (const proxyId of inFlight) {
      const pending = this.#pendingChildRequests.get(proxyId);
      // An initialize keeps running: its result is cached for the sessions that come next.
      if (pending === undefined || pending.isInitialize) continue;
      if (pending.subscribeUri !== undefined && this.#subscribeGoesOn(pending)) continue;
      this.#dropPending(proxyId);
      if (this.#downReason === undefined) {
        this.#sendToChild({
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: proxyId, reason: "The client session closed" },
        });
      }
    }
    for (const proxyId of serverRequests) {
      const pending = this.#pendingServerRequests.get(proxyId);
      if (pending === undefined) continue;
      this.#dropServerRequest(proxyId, pending);
      if (this.#downReason === undefined) {
        this.#sendToChild(
          errorResponse(
            pending.writtenChildId ?? pending.childId,
            ErrorCode.InternalError,
            "The client session closed before answering",
          ),
        );
      }
    }
    if (this.#sessions.size === 0) this.#onLastSessionClosed?.();
  }

  // ---- child → client -------------------------------------------------------------------------

  /**
   * Offered each large line of the child before it is decoded: when its ends say it is the answer to a
   * request a client sent, and that client's session takes answers as bytes, it goes there with only its
   * id replaced, and true is returned. Else false: the line is to be parsed and routed as usual (the
   * answers the proxy itself reads, to `initialize`, to a subscription, to its own requests, among them).
   * `noCarriageReturn`: the line is known to hold no `\r`.
   */
  relayLargeAnswer(line: Uint8Array, noCarriageReturn?: boolean): boolean {
    const at = answerIdOf(line);
    const pending = at === undefined ? undefined : this.#passedOnAsItIs(at.id);
    const session = pending?.session;
    if (at === undefined || pending === undefined || session === undefined || !session.takesAnswerBytes) {
      return false;
    }
    this.#dropPending(at.id);
    session.forgetRequest(pending.clientId);
    // The new id, as JSON writes it, adds no raw `\r`.
    session.deliverAnswer(pending.clientId, withAnswerId(line, at, writtenId(pending)), noCarriageReturn);
    return true;
  }

  /**
   * Offered each long line of the child while it is still being written: when its start says it is the
   * answer to a request a client sent (the id first, as the Python SDK writes), and that client's session
   * can take it in pieces now, the rest of the line follows it there as it comes, with only the id
   * replaced. Returns the sink for the line's pieces, or undefined: the line is gathered as usual.
   */
  streamLargeAnswer(start: Uint8Array): LineSink | undefined {
    const at = leadingAnswerIdOf(start);
    const pending = at === undefined ? undefined : this.#passedOnAsItIs(at.id);
    const session = pending?.session;
    if (at === undefined || pending === undefined || session === undefined) return undefined;
    const sink = session.streamAnswer(pending.clientId);
    if (sink === undefined) return undefined;
    this.#dropPending(at.id);
    session.forgetRequest(pending.clientId);
    const answerId = writtenId(pending);
    let first = true;
    let open = true;
    const cutShort = (reason: string) => {
      if (!open) return;
      open = false;
      this.#streaming.delete(cutShort);
      clearTimeout(timer);
      this.#logger.error("server {name}: its answer to {id} was cut short ({reason})", {
        name: this.name,
        id: at.id,
        reason,
      });
      sink.abort(reason);
    };
    // `--request-timeout` holds for the rest of the answer too, counted anew from its start.
    const timer = this.#requestTimeoutMs > 0
      ? setTimeout(
        () => cutShort(`no end within --request-timeout (${this.#requestTimeoutMs / 1000} s)`),
        this.#requestTimeoutMs,
      )
      : undefined;
    this.#streaming.add(cutShort);
    return {
      write: (bytes, noCarriageReturn, yours) => {
        if (!open) return;
        // The first piece is the start, which holds the id (JSON.stringify writes none with a `\r`).
        // The others go on as they are where they are the sink's to keep, which saves a copy of most of
        // the answer (about 0.1–0.2 ms of CPU per MiB).
        sink.write(
          first
            ? withAnswerId(bytes, at, answerId)
            : yours
            ? bytes as Uint8Array<ArrayBuffer>
            : bytes.slice(),
          noCarriageReturn,
        );
        first = false;
      },
      end: () => {
        if (!open) return;
        open = false;
        this.#streaming.delete(cutShort);
        clearTimeout(timer);
        sink.end();
      },
      abort: cutShort,
    };
  }

  /**
   * The request `proxyId` names, when its answer may go to its client without the proxy reading it: a
   * client's request, still waiting, that is none of those whose answer the proxy uses (`initialize`, a
   * subscription, its own).
   */
  #passedOnAsItIs(proxyId: number): PendingChildRequest | undefined {
    const pending = this.#pendingChildRequests.get(proxyId);
    if (
      pending === undefined || pending.session === undefined || pending.onAnswer !== undefined ||
      pending.isInitialize || pending.subscribeUri !== undefined || pending.listsTools
    ) {
      return undefined;
    }
    return pending;
  }

  #routeChildResponse(response: JsonRpcResponse, line: string | undefined): void {
    const proxyId = response.id;
    const pending = typeof proxyId === "number" ? this.#pendingChildRequests.get(proxyId) : undefined;
    if (pending === undefined) {
      this.#logger.debug("answer {id} from {server} matches no waiting request; dropped", {
        id: proxyId,
        server: this.name,
      });
      return;
    }
    this.#dropPending(proxyId as number);
    // Kept to answer later sessions: each number as the child wrote it (found by QA: `1.0`, `-0`, `1e400`
    // and integers beyond 2^53 reached the first session as written, and the next ones changed).
    if (pending.isInitialize) response = reread(response, line);
    if (pending.onAnswer !== undefined) {
      pending.onAnswer(response);
      return;
    }
    pending.session?.forgetRequest(pending.clientId);
    if (pending.listsTools && response.result !== undefined) {
      try {
        this.#onToolsListed!(response.result);
      } catch (error) {
        // What is learned from it is no reason to lose the answer.
        this.#logger.error("server {name}: reading its tools/list answer failed: {error}", {
          name: this.name,
          error,
        });
      }
    }
    if (pending.subscribeUri !== undefined) this.#subscribeSettled(pending, response);
    if (pending.logLevelParams !== undefined && response.result !== undefined) {
      this.#logLevelParams = pending.logLevelParams;
    }
    if (pending.isInitialize) {
      if (response.result !== undefined) {
        pending.session?.markInitialized();
        this.#initializeParams ??= pending.initializeParams;
      }
      this.#settleInitialize(response);
    }
    const answerId = writtenId(pending);
    const json = line === undefined ? undefined : childLineWithId(line, proxyId as number, answerId);
    // An initialize answer was read again already (above).
    const exact = json === undefined && pending.session !== undefined && !pending.isInitialize
      ? reread(response, line)
      : response;
    pending.session?.deliver({ ...exact, id: answerId }, pending.clientId, json);
  }

  #settleInitialize(response: JsonRpcResponse): void {
    clearTimeout(this.#initializeTimer);
    this.#initializeInFlight = false;
    this.#initializeOverdue = false;
    const waiters = this.#initializeWaiters;
    this.#initializeWaiters = [];
    if (response.result !== undefined) {
      this.#initializeResult = response.result;
      for (const { session, request, replyId } of waiters) {
        this.#answerInitialize(session, request, replyId, response.result);
      }
    } else {
      for (const { session, request, replyId } of waiters) {
        session.deliver({ ...response, id: replyId }, request.id);
      }
    }
    const stateless = this.#waitingForOwnInitialize.splice(0);
    if (stateless.length === 0) return;
    if (response.result === undefined) {
      const reason = `MCP server "${this.name}" refused to initialize: ${response.error?.message}`;
      for (const { session, request, replyId } of stateless) {
        session.deliver(errorResponse(replyId, ErrorCode.InternalError, reason), request.id);
      }
      return;
    }
    // Their requests go now, so the child must hear that initialization is complete first.
    if (!this.#initializedNotificationSent) {
      this.#initializedNotificationSent = true;
      this.#sendToChild({ jsonrpc: "2.0", method: "notifications/initialized" });
    }
    for (const { session, request, json, bytes } of stateless) {
      if (!session.closed) this.forwardRequest(session, request, json, bytes);
    }
  }

  /** Answers a later session's `initialize` with the child's own result, under `replyId`. */
  #answerInitialize(
    session: ServerSession,
    request: JsonRpcRequest,
    replyId: RequestId,
    result: Record<string, unknown>,
  ): void {
    const requested = request.params?.protocolVersion;
    // A child may answer with any result, `null` too: passed on as it is, as any answer is.
    if (
      typeof requested === "string" && typeof result === "object" && result !== null &&
      requested !== result.protocolVersion &&
      this.#supportedProtocolVersions.includes(requested)
    ) {
      result = { ...result, protocolVersion: requested };
    }
    session.markInitialized();
    session.deliver(resultResponse(replyId, result), request.id);
  }

  #routeServerRequest(request: JsonRpcRequest, line: string | undefined): void {
    const session = this.#chooseSessionFor(request.method);
    if (typeof session === "string") {
      const why = session;
      this.#logger.warn("{server} sent {method}, but {why}; answered with an error", {
        server: this.name,
        method: request.method,
        why,
      });
      const childId = (line === undefined ? undefined : idSpelling(line, request.id)) ?? request.id;
      this.#sendToChild(errorResponse(childId, ErrorCode.InternalError, `mcp-proxy: ${why}`));
      return;
    }
    const proxyId = this.#nextServerRequestId++;
    const relatedRequestId = session.currentRequestId();
    const pending: PendingServerRequest = { session, childId: request.id, relatedRequestId };
    const writtenChildId = line === undefined ? undefined : idSpelling(line, request.id);
    if (writtenChildId !== undefined) pending.writtenChildId = writtenChildId;
    this.#pendingServerRequests.set(proxyId, pending);
    this.#serverRequestTimeouts?.add(proxyId);
    session.rememberServerRequest(proxyId);
    const json = line === undefined ? undefined : childLineWithId(line, request.id, proxyId);
    const forwarded = { ...(json === undefined ? reread(request, line) : request), id: proxyId };
    session.deliver(forwarded, relatedRequestId, json);
  }

  #routeServerNotification(notification: JsonRpcNotification, line: string | undefined): void {
    if (notification.method === "notifications/progress") {
      const token = notification.params?.progressToken;
      const pending = typeof token === "number" ? this.#pendingChildRequests.get(token) : undefined;
      if (pending?.session === undefined || pending.clientProgressToken === undefined) {
        this.#logger.debug("progress for unknown token {token} from {server} dropped", {
          token,
          server: this.name,
        });
        return;
      }
      const clientToken = pending.clientProgressToken;
      const json = line === undefined ? undefined : withMemberReplaced(line, PROGRESS_PATH, clientToken);
      const forwarded = withParam(notification, line, json, "progressToken", clientToken);
      pending.session.deliver(forwarded, pending.clientId, json);
      return;
    }
    if (notification.method === "notifications/cancelled") {
      const childId = notification.params?.requestId;
      for (const [proxyId, pending] of this.#pendingServerRequests) {
        if (pending.childId !== childId) continue;
        this.#dropServerRequest(proxyId, pending);
        const json = line === undefined ? undefined : withMemberReplaced(line, CANCELLED_PATH, proxyId);
        // On the stream the request went on, while its call runs (found by QA: it went to the GET stream,
        // which a client need not open).
        const related = runningRequestOf(pending);
        pending.session.deliver(withParam(notification, line, json, "requestId", proxyId), related, json);
        return;
      }
      return;
    }
    if (this.#modern) {
      this.#routeModernNotification(notification, line);
      return;
    }
    if (notification.method === "notifications/resources/updated") {
      const subscribers = this.#subscribers.get(notification.params?.uri as string) ?? [];
      for (const session of subscribers) session.deliver(notification, session.currentRequestId(), line);
      return;
    }
    for (const session of this.#sessions) {
      if (session.initialized) session.deliver(notification, session.currentRequestId(), line);
    }
  }

  /**
   * A notification of a modern child (see {@link SharedServerOptions.modern}) that is no progress or
   * cancellation: to the `subscriptions/listen` it names, with the client's id in place of the proxy's;
   * else to the client whose request is the newest running (the revision relates a notification to the
   * request it is sent in, which stdio does not say), or to none when none runs.
   */
  #routeModernNotification(notification: JsonRpcNotification, line: string | undefined): void {
    const meta = notification.params?._meta;
    const subscription = typeof meta === "object" && meta !== null
      ? (meta as Record<string, unknown>)[SUBSCRIPTION_ID_META_KEY]
      : undefined;
    if (subscription !== undefined) {
      const pending = typeof subscription === "number"
        ? this.#pendingChildRequests.get(subscription)
        : undefined;
      if (pending?.session === undefined || pending.onAnswer !== undefined) {
        // A subscription that ended (its stream closed before the child heard of it): nobody's.
        this.#logger.debug("{method} from {server} for ended subscription {id} dropped", {
          method: notification.method,
          server: this.name,
          id: JSON.stringify(subscription),
        });
        return;
      }
      const clientId = writtenId(pending);
      const json = line === undefined ? undefined : withMemberReplaced(line, SUBSCRIPTION_ID_PATH, clientId);
      const exact = json === undefined ? reread(notification, line) : notification;
      const exactMeta = exact.params?._meta as Record<string, unknown>;
      const forwarded = {
        ...exact,
        params: { ...exact.params, _meta: { ...exactMeta, [SUBSCRIPTION_ID_META_KEY]: clientId } },
      };
      pending.session.deliver(forwarded, pending.clientId, json);
      return;
    }
    let newest: ServerSession | undefined;
    for (const session of this.#sessions) {
      const since = session.newestRequestAt();
      if (since !== undefined && (newest === undefined || since > newest.newestRequestAt()!)) {
        newest = session;
      }
    }
    if (newest === undefined) {
      this.#logger.debug("{method} from {server} while no request runs: dropped", {
        method: notification.method,
        server: this.name,
      });
      return;
    }
    newest.deliver(notification, newest.currentRequestId(), line);
  }

  /**
   * The session a request from the child most likely belongs to: the one with the most recent request
   * still running, if it can answer it (or for `roots/list`, the one whose word that its roots changed is
   * the last thing a client did, unless the newest stateful call is of a client with roots). While a call
   * runs, only that session: another is never given what is most likely another client's (found by QA: a
   * sampling request made in the call of a client that cannot sample went to another client, with its
   * text). With none running, the most recently active session able to answer it that can get a message now
   * (Streamable HTTP: its GET stream open), else the most recently active one able to answer it. When
   * none may have it, why not.
   */
  #chooseSessionFor(method: string): ServerSession | string {
    const capability = REQUIRED_CAPABILITY[method];
    let busiest: ServerSession | undefined;
    let busiestStateful: ServerSession | undefined;
    let latest: ServerSession | undefined;
    let latestListening: ServerSession | undefined;
    /** The sessions with the newest request running, whatever they can answer: of all, of the stateful. */
    let newestRunning: ServerSession | undefined;
    let newestStatefulRunning: ServerSession | undefined;
    let rootsChanged: ServerSession | undefined;
    for (const session of this.#sessions) {
      if (!session.initialized) continue;
      const runningSince = session.newestRequestAt();
      if (
        runningSince !== undefined &&
        (newestRunning === undefined || runningSince > newestRunning.newestRequestAt()!)
      ) {
        newestRunning = session;
      }
      if (
        runningSince !== undefined && !session.stateless &&
        (newestStatefulRunning === undefined || runningSince > newestStatefulRunning.newestRequestAt()!)
      ) {
        newestStatefulRunning = session;
      }
      if (capability !== undefined && !session.canAnswer(capability)) continue;
      if (method === "roots/list" && session.rootsChangedAt > (rootsChanged?.rootsChangedAt ?? 0)) {
        rootsChanged = session;
      }
      if (runningSince !== undefined) {
        if (busiest === undefined || runningSince > busiest.newestRequestAt()!) busiest = session;
        if (
          !session.stateless &&
          (busiestStateful === undefined || runningSince > busiestStateful.newestRequestAt()!)
        ) {
          busiestStateful = session;
        }
      }
      if (latest === undefined || session.lastActiveAt > latest.lastActiveAt) latest = session;
      if (
        session.listening &&
        (latestListening === undefined || session.lastActiveAt > latestListening.lastActiveAt)
      ) {
        latestListening = session;
      }
    }
    // A `roots/list` right after a client's word that its roots changed (the last message of any client,
    // closed sessions' too) is that client's, though a client that cannot answer it, or a stateless one
    // that may have no roots, has a call running (found by review: refused, or sent to a stateless call);
    // the newest stateful call keeps it when its client can answer it (found by review: an older one's took
    // it, during a newer call of a client without roots).
    if (rootsChanged !== undefined && rootsChanged.rootsChangedAt === this.#clock) {
      return newestStatefulRunning !== undefined && newestStatefulRunning === busiestStateful
        ? busiestStateful
        : rootsChanged;
    }
    // The newest call's, or none: one made during a newer call of a client that cannot answer it is most
    // likely that call's (found by QA: it went to a capable client whose older call ran, with the other
    // client's prompt).
    if (newestRunning !== undefined) {
      if (busiest === newestRunning) return busiest;
      return `the client whose call is the newest running did not declare the "${capability}" capability`;
    }
    const chosen = latestListening ?? latest;
    if (chosen !== undefined) return chosen;
    if (this.#sessions.size === 0) return "no client is connected";
    return capability === undefined
      ? "no connected client can take it (none initialized)"
      : `no connected client declared the "${capability}" capability`;
  }
}

/** One client's view of a {@link SharedServer}. Created by {@link SharedServer.openSession}. */
export class ServerSession {
  readonly seq: number;
  readonly label: string;
  readonly stateless: boolean;
  readonly #server: SharedServer;
  readonly #peer: SessionPeer;
  /** Client id → proxy id and start (server clock) of requests at the child, oldest first. */
  readonly #inFlight = new Map<RequestId, { proxyId: number; at: number }>();
  /** Proxy ids of the child's requests waiting for this client's answer. */
  readonly #serverRequests = new Set<number>();
  /** Resource URIs this session is subscribed to. */
  readonly subscriptions = new Set<string>();
  #capabilities: Record<string, unknown> = {};
  #initialized: boolean;
  /** The id of the client's `initialize` while it waits for its answer. */
  #initializeId: RequestId | undefined;
  #closed = false;
  lastActiveAt = 0;

  constructor(server: SharedServer, peer: SessionPeer, seq: number, options: SessionOptions) {
    this.#server = server;
    this.#peer = peer;
    this.seq = seq;
    this.label = options.label;
    this.stateless = options.stateless ?? false;
    this.#initialized = this.stateless;
  }

  /** True once the session's `initialize` was answered (always for stateless sessions). */
  get initialized(): boolean {
    return this.#initialized;
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while a request of this session waits for the child. */
  get hasRequestInFlight(): boolean {
    return this.#inFlight.size > 0;
  }

  /**
   * Routes one message from the client to the shared child. `json`, when the caller has it, is the
   * message's JSON text as the client sent it, on one line: a request or an answer goes on as that text
   * with only its id replaced, where it can, instead of being serialized again. `bytes`, for a large
   * message, are that text's UTF-8 bytes as the client sent them (see `bodyAsLine`): they go on instead,
   * with only the id replaced, where they can.
   */
  handleClientMessage(message: JsonRpcMessage, json?: string, bytes?: Uint8Array<ArrayBuffer>): void {
    if (this.#closed) return;
    if (isRequest(message)) this.#server.forwardRequest(this, message, json, bytes);
    else if (isNotification(message)) this.#server.forwardNotification(this, message, json);
    else this.#server.forwardResponse(this, message as JsonRpcResponse, json, bytes);
  }

  /** Ends the session: its requests still running at the child are cancelled there. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const inFlight = [...this.#inFlight.values()].map((request) => request.proxyId);
    this.#server.sessionClosed(this, inFlight, this.#serverRequests);
    this.#inFlight.clear();
    this.#serverRequests.clear();
  }

  // ---- used by SharedServer -------------------------------------------------------------------

  /** Starts an answer in pieces (see {@link SessionPeer.streamAnswer}); undefined when it cannot go so. */
  streamAnswer(clientId: RequestId): AnswerSink | undefined {
    return this.#closed ? undefined : this.#peer.streamAnswer?.(clientId);
  }

  /** Whether the client takes answers as bytes ({@link SessionPeer.deliverAnswer}). */
  get takesAnswerBytes(): boolean {
    return this.#peer.deliverAnswer !== undefined;
  }

  /** Delivers an answer as bytes (see {@link SessionPeer.deliverAnswer}) unless the session is closed. */
  deliverAnswer(clientId: RequestId, json: Uint8Array<ArrayBuffer>, noCarriageReturn?: boolean): void {
    if (!this.#closed) this.#peer.deliverAnswer!(clientId, json, noCarriageReturn);
  }

  /**
   * Delivers a message (and its JSON text, when known) to the client unless the session is closed. An
   * error answer to the client's `initialize` ends the session after it: the client counts it as not
   * connected and will open another, so this one would only hold a place of `--max-sessions` for good.
   */
  deliver(message: JsonRpcMessage, relatedRequestId?: RequestId, json?: string): void {
    if (this.#closed) return;
    this.#peer.deliver(message, relatedRequestId, json);
    if (this.#initializeId === undefined || relatedRequestId !== this.#initializeId) return;
    this.#initializeId = undefined;
    if (!this.#initialized && "error" in message) this.#peer.end?.("its initialize failed");
  }

  /** Tells the peer that the client's request `clientId` will get no answer. */
  abandon(clientId: RequestId): void {
    if (!this.#closed) this.#peer.requestAbandoned?.(clientId);
  }

  /**
   * The id an answer to the client's request `clientId` carries: as the client wrote it (`1.0` stays
   * `1.0`), while it waits for the child (or for another session's `initialize` or subscription there);
   * else `clientId`.
   */
  answerId(clientId: RequestId): RequestId {
    return this.#server.answerIdOf(this, clientId, this.#inFlight.get(clientId)?.proxyId) ?? clientId;
  }

  /** True while the client's request `clientId` waits for the child. */
  isInFlight(clientId: RequestId): boolean {
    return this.#inFlight.has(clientId);
  }

  /** The client id of the newest request still running, if any. */
  currentRequestId(): RequestId | undefined {
    let newest: RequestId | undefined;
    for (const clientId of this.#inFlight.keys()) newest = clientId;
    return newest;
  }

  touch(clock: number): void {
    this.lastActiveAt = clock;
  }

  /** When (server clock) the client last said its roots changed: the child's `roots/list` may follow. */
  rootsChangedAt = 0;

  recordInitialize(id: RequestId, params: Record<string, unknown> | undefined): void {
    this.#initializeId = id;
    const capabilities = params?.capabilities;
    if (typeof capabilities === "object" && capabilities !== null) {
      this.#capabilities = capabilities as Record<string, unknown>;
    }
  }

  markInitialized(): void {
    this.#initialized = true;
  }

  /** Whether a message that belongs to no request reaches the client now ({@link SessionPeer.listening}). */
  get listening(): boolean {
    return this.#peer.listening?.() ?? true;
  }

  canAnswer(capability: string): boolean {
    return this.stateless || this.#capabilities[capability] !== undefined;
  }

  rememberRequest(clientId: RequestId, proxyId: number, clock: number): void {
    this.#inFlight.set(clientId, { proxyId, at: clock });
  }

  /** When the newest request still running started (server clock), if any runs. */
  newestRequestAt(): number | undefined {
    let newest: number | undefined;
    for (const { at } of this.#inFlight.values()) newest = at;
    return newest;
  }

  forgetRequest(clientId: RequestId): void {
    this.#inFlight.delete(clientId);
  }

  proxyIdOf(clientId: RequestId): number | undefined {
    return this.#inFlight.get(clientId)?.proxyId;
  }

  rememberServerRequest(proxyId: number): void {
    this.#serverRequests.add(proxyId);
  }

  forgetServerRequest(proxyId: number): void {
    this.#serverRequests.delete(proxyId);
  }
}
