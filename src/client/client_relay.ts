/**
 * Client mode's relay: every message from the stdio client goes to the remote server unchanged, and
 * every message from the server comes back unchanged. The relay adds only what keeps the session alive
 * behind the client's back:
 *
 * - It connects on the first message, picking the transport (`auto`: Streamable HTTP, falling back to
 *   legacy SSE when the server answers the first POST with 400, 404 or 405).
 * - When the server forgets the session (404) or the SSE stream ends, it opens a new session and
 *   replays the client's `initialize`, `notifications/initialized`, log level and subscriptions, then
 *   sends again what failed. The stdio client never sees it.
 * - While the server cannot be reached it keeps trying for `connectTimeoutMs`.
 * - Every request the client sent gets exactly one answer: the server's, or an error saying why none
 *   can come (server unreachable, stream broken, `--request-timeout`).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { ClientTransportName } from "../cli/command_line.ts";
import { DelayQueue } from "../delay_queue.ts";
import { PlacesDone, PlacesPending } from "./message_places.ts";
import { withMemberReplaced } from "../json_members.ts";
import {
  ErrorCode,
  errorResponse,
  idSpelling,
  isNotification,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
  parseLosslesslyOr,
  type RequestId,
  withRequestId,
} from "../jsonrpc.ts";
import { asText, type JsonText } from "../large_answer.ts";
import {
  backoffDelay,
  busyDelay,
  gatewayMissedServer,
  RemoteError,
  type RemoteErrorKind,
  type RemoteTransport,
  type SendOrder,
  sleep,
} from "./remote_transport.ts";

/** Creates the wire for one session. */
export type TransportFactory = (kind: "streamablehttp" | "sse") => RemoteTransport;

/** Options of {@link ClientRelay}. */
export interface ClientRelayOptions {
  transport: ClientTransportName;
  createTransport: TransportFactory;
  /**
   * Writes one message to the stdio client; `json`, when given, is that message on one line, as the
   * server wrote it (text, or UTF-8 bytes).
   */
  toClient(message: JsonRpcMessage, json?: JsonText): void;
  connectTimeoutMs: number;
  /** 0: no limit. */
  requestTimeoutMs: number;
  logger: Logger;
  /** Called with each answer of the server to a request of the client, and the request's method. */
  onanswer?: (method: string, response: JsonRpcResponse) => void;
  /** What may mend a refusal of the server and have the request sent once more; see {@link RefusalMender}. */
  mender?: RefusalMender;
  /**
   * Whether `request` is cancelled by closing its stream (revision 2026-07-28), not by a notification: one
   * the client or `--request-timeout` cancels before it went goes no more, and mcp-proxy sends no
   * `notifications/cancelled` of its own for it.
   */
  cancelsByClosing?: (request: JsonRpcRequest) => boolean;
}

/**
 * A refusal the relay may mend once, for requests it {@link keep}s: the server's error answer waits while
 * {@link mend} runs (it may ask the server requests of its own, whose answers never reach the client); when
 * it resolves true, the request goes to the server again, else the error answer goes to the client. Only
 * for error answers given as the body of an HTTP 400 (see `RemoteTransport.onmessage`), which say
 * the server ran none of the request, and only those {@link mend} knows to say so: at most once holds.
 */
export interface RefusalMender {
  /**
   * Whether to keep `request` for a second sending (on the per-request path: cheap): a note of how it goes
   * now, which {@link mend} gets; undefined: not kept.
   */
  keep(request: JsonRpcRequest): unknown;
  mend(
    request: JsonRpcRequest,
    refusal: JsonRpcResponse,
    note: unknown,
    ask: (method: string, params: Record<string, unknown>) => Promise<JsonRpcResponse>,
  ): Promise<boolean>;
}

/**
 * A message longer than this (in UTF-16 units; its UTF-8 may be 3× as long) may reach the server after a
 * short one sent later, as each message is its own POST. The notifications and answers after it (its own
 * cancellation, say) wait until the server answered its POST, or for {@link LONG_MESSAGE_HOLD_MS} once its
 * body is written (a server that answers with JSON answers only when done). Requests do not wait: those in
 * flight together run in no order the client can count on.
 */
const LONG_MESSAGE = 16 * 1024;
const LONG_MESSAGE_HOLD_MS = 250;
/**
 * How long a short message written on a kept connection holds the notifications and answers after it, at
 * most, for the server to take it: it reads its connections in no set order (found by QA: a cancellation
 * on another kept connection was read before its call, 1–3 times in 100, by a Node server).
 */
const KEPT_HOLD_MS = 50;

/** How long the end of input waits for mcp-proxy's own cancellation of a timed-out request to go. */
const OWN_CANCEL_WAIT_MS = 2000;
/**
 * How long the client's messages still on their way to a session found lost hold those written after them
 * (see `#sessionLost`): its refusals come within it; one it took and holds (a call running) lets go then.
 */
const LOST_SESSION_GRACE_MS = 1000;
/** How long a message waits at most for those before it to be written (see `#writtenAll`). */
const WRITTEN_WAIT_MS = 1000;
/** Lost sessions whose POSTs still on their way end with the relay. */
const MAX_RETIRED = 8;
/** Ids of lost sessions' requests to the client kept (see `#voided`); past that, the oldest go. */
const MAX_VOIDED = 256;
/** What the client is told of the server's requests its session left unanswered when it was lost. */
const SESSION_LOST = "mcp-proxy: the session with the server was lost; its request can no longer be answered";

/** The kinds of {@link RemoteError} that say the message did not reach the server. */
const NOT_SENT: ReadonlySet<RemoteErrorKind> = new Set(["unreachable", "busy", "closed", "session-expired"]);

/** The error answer to a server's request that came, or was still unanswered, when the client's input ended. */
const INPUT_ENDED = "mcp-proxy: the client's input has ended: it can answer no requests";

/** A subscription of revision 2026-07-28: answered only when it ends. */
const LISTEN = "subscriptions/listen";

/** Statuses that tell a legacy SSE server from a Streamable HTTP one, per the spec's compatibility notes. */
const NOT_STREAMABLE = [400, 404, 405];

interface PendingRequest {
  method: string;
  /** The session it was sent on. */
  generation: number;
  /** Its id as the client spelled it, when JSON would write its value otherwise (`idSpelling`). */
  answerId?: RequestId;
  /**
   * The server took it on the session it was sent on (legacy SSE: 202). One not yet taken when that
   * session is lost is sent again; one taken is answered with an error, as its answer cannot come.
   */
  accepted?: boolean;
  /** The relay answered it itself (an error): it is not sent, or not again. */
  abandoned?: boolean;
  /** See {@link ClientRelayOptions.cancelsByClosing}. */
  closable?: boolean;
  /**
   * The wire it went on last: a `closable` one's stream is closed there (`RemoteTransport.abandon`), and
   * another's cancellation goes there when it times out. Undefined until it is handed to a wire, and again
   * when that wire failed to deliver it (`NOT_SENT`).
   */
  transport?: RemoteTransport;
  /** Kept for the {@link RefusalMender}, until its first error answer. */
  again?: { request: JsonRpcRequest; json: string | undefined; note: unknown };
  /** The sending of the client's cancellation, for one it cancelled before it was handed to a wire. */
  cancelSent?: Promise<void>;
  /** The client cancelled it: it goes once, as the client wrote it, and is not sent again. */
  cancelled?: boolean;
  /** Its place among the client's messages (see `#goingAgain`). */
  place?: number;
}

/**
 * What a transport tells the relay of one message on its way (see `ClientRelay.#orderOf`): one object a
 * message, without closures of its own.
 */
class MessageOrder implements SendOrder {
  constructor(
    readonly onwritten: (
      place: number,
      long: boolean,
      generation: number,
      fresh: boolean | undefined,
    ) => void,
    readonly ontaken: (place: number) => void,
    readonly place: number,
    readonly long: boolean,
    readonly generation: number,
  ) {}

  written(fresh?: boolean): void {
    this.onwritten(this.place, this.long, this.generation, fresh);
  }

  /** Taken by the server (its POST answered), or failed; or written by a transport that does not tell. */
  received(): void {
    this.ontaken(this.place);
  }
}

/** See the module documentation. */
export class ClientRelay {
  readonly #options: ClientRelayOptions;
  readonly #logger: Logger;
  readonly #pending = new Map<RequestId, PendingRequest>();
  /**
   * `--request-timeout`: the ids of the requests waiting, on one timer (a `setTimeout` and `clearTimeout`
   * per request cost about 10 µs of each call's latency).
   */
  readonly #timeouts: DelayQueue<RequestId> | undefined;
  readonly #internal = new Map<string, (response: JsonRpcResponse) => void>();
  /** How many of the requests waiting are subscriptions ({@link LISTEN}). */
  #listening = 0;
  #nextInternalId = 1;
  /** Unguessable: a client's own request id can never be taken for one of the proxy's (found by QA). */
  readonly #internalIdPrefix = `mcp-proxy-${crypto.randomUUID()}-`;
  /** The current session, or the one being opened; undefined until needed, and after one is lost. */
  #session: Promise<RemoteTransport> | undefined;
  /** `#session` once it is open, with its transport: a message is then sent without waiting a turn. */
  #opened: { session: Promise<RemoteTransport>; transport: RemoteTransport } | undefined;
  #generation = 0;
  /** Settled once the server answered the client's initialize: no more transport fallback after that. */
  #kind: "streamablehttp" | "sse" | undefined;
  #fallenBack = false;
  /** What Streamable HTTP answered that made the relay fall back: said too if the fallback fails. */
  #fallbackReason: string | undefined;
  #initialize: JsonRpcRequest | undefined;
  #initialized = false;
  #logLevel: Record<string, unknown> | undefined;
  readonly #subscriptions = new Set<string>();
  #closed = false;
  /**
   * The server's requests passed to the client and not answered by it (nor cancelled by the server) yet,
   * of the current session, with their ids as the server spelled them. Once the client's input has ended
   * ({@link inputEnded}), it can answer none: they are answered with an error instead.
   */
  readonly #serverRequests = new Map<RequestId, RequestId>();
  /**
   * The ids of the server's requests that a lost session left unanswered: the client was told they are
   * cancelled, and an answer it gives one yet is dropped, not sent to the next session, whose server may
   * have made another request of the same id meanwhile (found by QA: a restarted server counts from 0
   * again, and an elicitation answered late answered the new server's). The last {@link MAX_VOIDED}.
   */
  readonly #voided = new Set<RequestId>();
  /**
   * Requests of the current session's server that the client got under an id of mcp-proxy's own, as their
   * own is one of {@link #voided}: that id → the server's, and back.
   */
  readonly #renamed = new Map<RequestId, RequestId>();
  readonly #renamedFrom = new Map<RequestId, RequestId>();
  #renames = 0;
  #inputEnded = false;
  /** Aborted by `close()`: ends every wait, so that nothing of the relay outlives it. */
  readonly #stop = new AbortController();
  /**
   * Sessions lost or replaced lately, closed without ending what they still had on their way (see
   * `RemoteTransport.close`): ended with the relay (found by review: a legacy session's wait for its last
   * POSTs outlived the relay by up to `--connect-timeout`). The last {@link MAX_RETIRED} only: the waits of
   * older ones have long ended.
   */
  readonly #retired = new Set<RemoteTransport>();
  /**
   * Notifications and answers of the client still being sent. (A request counts in `#pending` until it is
   * answered: its POST may outlast it, when `--request-timeout` answered it first.)
   */
  #sending = 0;
  #whenDrained: (() => void)[] = [];
  /** At the end of input, the wait for the messages still on their way (see {@link drained}). */
  #sendingWait: ReturnType<typeof setTimeout> | undefined;
  /**
   * The client's `initialize` requests still waiting for their answer, by id: until then the server has
   * no session for other messages (Streamable HTTP gives its session id with that answer), so they wait.
   */
  readonly #initializing = new Map<RequestId, { promise: Promise<void>; resolve: () => void }>();
  /** Sessions lost in a row soon after they opened: each reconnection then waits longer. */
  #quickLosses = 0;
  #openedAt = 0;
  /** Why the last attempt to open a session failed, until one opens. */
  #lastOpenFailure: { reason: string; at: number } | undefined;
  /** The transport of the session being opened, until it is open or failed. */
  #opening: RemoteTransport | undefined;
  /** Sessions whose replayed handshake sent `notifications/initialized` (see {@link #replay}). */
  readonly #replayedInitialized = new WeakSet<RemoteTransport>();
  /** Each client message's place in the order the client wrote them (see {@link #goingAgain}). */
  #written = 0;
  /**
   * The places of the client's messages that failed to go and are to go again (a server down, a session
   * lost): until each has gone, the messages after it wait, so that none overtakes it (found by QA: the
   * notifications written during an outage reached the server in the order of their back-offs).
   */
  readonly #goingAgain = new PlacesPending();
  /**
   * The client's messages handed to a session and not through yet, with the session's generation: when it
   * is lost, those still on their way there may be refused too, and are to go again before any written
   * after them (found by QA: refusals come back in no order).
   */
  readonly #onItsWay = new Map<number, number>();
  /**
   * The places of the client's messages whose body was written the first time they went (or that will not
   * go): all of them, and the notifications' and answers' (requests count as written there at once). A
   * notification or an answer goes once every message written before it is written, and a request once
   * every notification or answer before it is (for {@link WRITTEN_WAIT_MS} at most): each message is its
   * own POST, and one on a new connection would otherwise arrive after one written later that found a kept
   * one (found by QA: a notification ahead of the call before it). Requests written together go in no order
   * the client can count on. (Messages that go again keep their order by {@link #goingAgain}.)
   */
  readonly #writtenAll = new PlacesDone(WRITTEN_WAIT_MS);
  readonly #writtenOthers = new PlacesDone(WRITTEN_WAIT_MS);
  /** "…; retrying" was logged for the outage (or the server's refusals for now) under way. */
  #warnedUnreachable = false;
  /**
   * The places of the messages that hold the notifications and answers after them until the server has
   * them: a long one (see {@link LONG_MESSAGE}) from when it goes, one written on a new connection from
   * then; each until its POST is answered, or {@link LONG_MESSAGE_HOLD_MS} after it is written. One each
   * (found by review: one slot for all let a second end the first's).
   */
  readonly #held = new PlacesPending();
  readonly #heldNoLonger = new DelayQueue<number>(LONG_MESSAGE_HOLD_MS, (place) => this.#held.delete(place));
  readonly #heldKeptNoLonger = new DelayQueue<number>(KEPT_HOLD_MS, (place) => this.#held.delete(place));

  constructor(options: ClientRelayOptions) {
    this.#options = options;
    this.#logger = options.logger;
    const timeout = options.requestTimeoutMs;
    this.#timeouts = timeout > 0 ? new DelayQueue(timeout, (id) => this.#timedOut(id, timeout)) : undefined;
  }

  /** Number of the client's requests still waiting for an answer. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Takes one message from the stdio client; `json`, when given, is its text, sent on unchanged. */
  handleClientMessage(message: JsonRpcMessage, json?: string): void {
    if (this.#closed) return;
    if (isRequest(message)) {
      if (!this.#noteRequest(message, json)) return;
    } else if (isResponse(message)) {
      const id = message.id;
      if (id !== null && this.#serverRequests.size + this.#voided.size !== 0) {
        if (this.#renamed.size !== 0 && this.#renamed.has(id)) return this.#answerRenamed(message, id, json);
        // Of the current session: it goes to that one only (see `#send`).
        if (this.#serverRequests.delete(id)) return void this.#dispatch(message, json, this.#generation);
        if (this.#voided.delete(id)) {
          this.#logger.debug("the client's answer to {id}, a request of a lost session, dropped", {
            id: JSON.stringify(id),
          });
          return;
        }
      }
    } else if (isNotification(message)) {
      if (message.method === "notifications/initialized") this.#initialized = true;
      if (message.method === "notifications/cancelled") {
        const id = message.params?.requestId as RequestId;
        // Revision 2026-07-28 cancels by closing the request's stream (one not sent yet goes no more); the
        // notification goes too, as written.
        const pending = id === undefined ? undefined : this.#pending.get(id);
        if (pending?.closable) {
          pending.abandoned = true;
          pending.transport?.abandon?.(id);
        }
        // An `initialize`, which the spec forbids to cancel, is still waited for: its answer opens the
        // session (found by review: the answer was dropped, and the session never learned its version).
        if (pending !== undefined && pending.method !== "initialize") {
          pending.cancelled = true;
          this.#forget(id);
        }
        // Earlier revisions: its stream is closed once the notification is out (see `letGo`); one not handed
        // to a wire yet goes all the same, as the client wrote it, and is let go when it does.
        const lettable = pending !== undefined && !pending.closable && pending.method !== "initialize";
        const sent = this.#dispatch(message, json);
        if (lettable && pending.transport !== undefined) pending.transport.letGo?.(id, sent);
        else if (lettable) pending.cancelSent = sent;
        return;
      }
    }
    this.#dispatch(message, json);
  }

  /**
   * The client's input has ended: it can answer no more of the server's requests. Those it has not
   * answered, and those that come later, are answered with an error, so that a call waiting on one (a tool
   * that samples) ends, and the end of input with it (found by QA: it waited until the server gave up on
   * its request, or for ever).
   */
  inputEnded(): void {
    if (this.#inputEnded) return;
    this.#inputEnded = true;
    for (const [id, spelled] of [...this.#serverRequests]) this.#refuseServerRequest(id, spelled);
    this.#checkDrained();
  }

  #refuseServerRequest(id: RequestId, spelled: RequestId): void {
    this.#serverRequests.delete(id);
    this.#forgetRenamed(id);
    this.#dispatch(errorResponse(spelled, ErrorCode.InternalError, INPUT_ENDED));
  }

  /** The client's answer `message` to the server's request it got as `id` (see `#renamed`) goes under the server's. */
  #answerRenamed(message: JsonRpcResponse, id: RequestId, json: string | undefined): void {
    const spelled = this.#serverRequests.get(id)!;
    this.#serverRequests.delete(id);
    const own = this.#forgetRenamed(id)!;
    const text = json === undefined ? undefined : withRequestId(json, id, spelled);
    const exact = text === undefined && json !== undefined ? parseLosslesslyOr(json, message) : message;
    this.#dispatch({ ...exact, id: text === undefined ? spelled : own }, text, this.#generation);
  }

  /** Forgets that the request the client got as `id` is the server's of another id; returns that id. */
  #forgetRenamed(id: RequestId): RequestId | undefined {
    const own = this.#renamed.get(id);
    if (own === undefined) return undefined;
    this.#renamed.delete(id);
    this.#renamedFrom.delete(own);
    return own;
  }

  /**
   * The session's requests to the client are void (it was lost): the client is told that each is
   * cancelled, and an answer it gives one yet goes nowhere (see {@link #voided}).
   */
  #voidServerRequests(): void {
    for (const [id, spelled] of this.#serverRequests) {
      this.#voided.delete(id);
      this.#voided.add(id);
      this.#options.toClient({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: this.#renamed.has(id) ? id : spelled, reason: SESSION_LOST },
      });
    }
    this.#serverRequests.clear();
    this.#renamed.clear();
    this.#renamedFrom.clear();
    for (const id of this.#voided) {
      if (this.#voided.size <= MAX_VOIDED) break;
      this.#voided.delete(id);
    }
  }

  /**
   * Resolves once no request of the client waits for an answer and every message it sent is out: at the
   * end of input, a notification or an answer to the server's request written last still reaches it. Once
   * the input has ended and only such messages are left, they get `--connect-timeout` to go (found by QA: a
   * server that never answered a notification's POST held the end of input for ever).
   */
  drained(): Promise<void> {
    if (this.#isDrained()) return Promise.resolve();
    const drained = new Promise<void>((resolve) => this.#whenDrained.push(resolve));
    this.#checkDrained();
    return drained;
  }

  #isDrained(): boolean {
    // A subscription has no end of its own to wait for: it ends with the relay.
    return this.#pending.size === this.#listening && this.#sending === 0;
  }

  #checkDrained(): void {
    if (this.#whenDrained.length === 0) return;
    if (this.#isDrained()) {
      clearTimeout(this.#sendingWait);
      this.#sendingWait = undefined;
      for (const resolve of this.#whenDrained.splice(0)) resolve();
    } else if (
      this.#inputEnded && this.#sendingWait === undefined && this.#pending.size === this.#listening
    ) {
      this.#sendingWait = setTimeout(() => {
        this.#sendingWait = undefined;
        this.#logger.warn("{count} messages to the server still on their way after {seconds} s; stopping", {
          count: this.#sending,
          seconds: this.#options.connectTimeoutMs / 1000,
        });
        for (const resolve of this.#whenDrained.splice(0)) resolve();
      }, this.#options.connectTimeoutMs);
    }
  }

  /**
   * Ends the session with the server (Streamable HTTP: DELETE) and stops every timer. The requests still
   * waiting for an answer get an error answer saying `why` (after "mcp-proxy: ").
   */
  async close(why = "stopping"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    clearTimeout(this.#sendingWait);
    this.#goingAgain.clear();
    this.#held.clear();
    this.#heldNoLonger.clear();
    this.#heldKeptNoLonger.clear();
    this.#writtenAll.close();
    this.#writtenOthers.close();
    for (const id of [...this.#pending.keys()]) this.#answerWithError(id, ErrorCode.ConnectionClosed, why);
    for (const gate of this.#initializing.values()) gate.resolve();
    this.#initializing.clear();
    this.#timeouts?.clear();
    this.#pending.clear();
    this.#listening = 0;
    const session = this.#session;
    this.#session = undefined;
    const transport = await session?.catch(() => undefined);
    const retired = [...this.#retired];
    this.#retired.clear();
    await Promise.all([transport?.close(), ...retired.map((old) => old.close())]);
  }

  /** Closes `transport`, a session lost or replaced, leaving what it has on its way to end as it will. */
  #retire(transport: RemoteTransport): Promise<void> {
    if (this.#closed) return transport.close();
    this.#retired.add(transport);
    if (this.#retired.size > MAX_RETIRED) this.#retired.delete(this.#retired.values().next().value!);
    return transport.close(false);
  }

  // ---- client → server --------------------------------------------------------------------------

  /**
   * Notes the client's request before it goes; false (and it is answered with an error) when a request of
   * its id still waits for an answer: JSON-RPC wants ids unique, and answers could not be told apart
   * (found by QA: the second answer was dropped), as server mode answers such a POST 400.
   */
  #noteRequest(request: JsonRpcRequest, json: string | undefined): boolean {
    const spelled = json === undefined ? undefined : idSpelling(json, request.id);
    const earlier = this.#pending.get(request.id);
    if (earlier !== undefined) {
      // A subscription (revision 2026-07-28) runs until its client leaves: one of its id takes its place.
      if (earlier.method !== LISTEN) {
        const id = JSON.stringify(spelled ?? request.id);
        this.#logger.warn("the client sent request {id} while one of that id still waits; refused", { id });
        const why = `mcp-proxy: request id ${id} is in use by a request still waiting for its answer`;
        this.#options.toClient(errorResponse(spelled ?? request.id, ErrorCode.InvalidRequest, why));
        return false;
      }
      this.#listening--;
    }
    const pending: PendingRequest = { method: request.method, generation: this.#generation };
    if (spelled !== undefined) pending.answerId = spelled;
    const note = this.#options.mender?.keep(request);
    if (note !== undefined) pending.again = { request, json, note };
    if (this.#options.cancelsByClosing?.(request)) pending.closable = true;
    if (request.method === LISTEN) {
      this.#listening++;
      this.#timeouts?.delete(request.id);
    } else this.#timeouts?.add(request.id);
    this.#pending.set(request.id, pending);
    switch (request.method) {
      case "initialize": {
        this.#initialize = request;
        this.#initializing.set(request.id, this.#initializeGate());
        break;
      }
      case "logging/setLevel":
        this.#logLevel = request.params;
        break;
      case "resources/subscribe":
        this.#subscriptions.add(String(request.params?.uri));
        break;
      case "resources/unsubscribe":
        this.#subscriptions.delete(String(request.params?.uri));
        break;
    }
    return true;
  }

  /**
   * The gate that holds other messages until the answer to an `initialize`. A server that takes the
   * connection and never answers would leave the client waiting with no word: that is said once
   * `--connect-timeout` has passed (`--request-timeout` bounds the wait), unless the server could not be
   * reached at all, which is said already.
   */
  #initializeGate(): { promise: Promise<void>; resolve: () => void } {
    const seconds = this.#options.connectTimeoutMs / 1000;
    const warn = () => {
      if (this.#warnedUnreachable) return;
      // Not before it went: the session it opens is still being opened (a legacy SSE stream waits for its
      // endpoint event); the time starts again then (found by review: the warning was never given).
      if (this.#openTransport() === undefined) {
        timer = setTimeout(warn, this.#options.connectTimeoutMs);
        return;
      }
      this.#logger.warn(
        "the server has not answered initialize within {seconds} s; still waiting (--request-timeout bounds the wait)",
        { seconds },
      );
    };
    let timer = setTimeout(warn, this.#options.connectTimeoutMs);
    const { promise, resolve } = Promise.withResolvers<void>();
    return {
      promise,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    };
  }

  /**
   * Sends one message, through reconnections and re-initialization; answers a request that cannot go.
   * Never rejects. A notification or an answer counts in `#sending` until it is out (a request, in
   * `#pending` until it is answered): one promise more for those, none for requests.
   */
  /** `askedIn`: for the client's answer to a request of the server, the session that made it. */
  #dispatch(message: JsonRpcMessage, json?: string, askedIn?: number): Promise<void> {
    const sent = this.#send(message, json, askedIn).catch((error) => this.#unforeseen(message, error));
    if (isRequest(message)) return sent;
    this.#sending++;
    return sent.finally(() => {
      this.#sending--;
      this.#checkDrained();
    });
  }

  /**
   * `#send` failed with an error that is no failure of the wire it knows (a bug, or a kind not foreseen):
   * a request still gets its answer.
   */
  #unforeseen(message: JsonRpcMessage, error: unknown): void {
    this.#logger.error("relaying a message failed: {error}", { error });
    this.#fail(message, error instanceof Error ? error.message : String(error));
  }

  async #send(message: JsonRpcMessage, json?: string, askedIn?: number): Promise<void> {
    const place = ++this.#written;
    const request = isRequest(message) ? message : undefined;
    if (request !== undefined) this.#writtenOthers.done(place);
    try {
      const pending = request && this.#pending.get(request.id);
      if (pending !== undefined) pending.place = place;
      const started = Date.now();
      let deadline = started + this.#options.connectTimeoutMs;
      if (this.#initializing.size > 0) {
        const waitFor = [...this.#initializing].filter(([id]) => id !== request?.id).map(([, gate]) =>
          gate.promise
        );
        if (waitFor.length > 0) await Promise.all(waitFor);
        // After an initialize the server answered, the time to reach it starts anew; after one that found
        // no server, it does not (found by QA: the messages written with it failed after twice the time).
        if (this.#kind !== undefined) deadline = Date.now() + this.#options.connectTimeoutMs;
      }
      let reinitialized = false;
      let resent = 0;
      let waitedForWrites = false;
      for (let attempt = 0;; attempt++) {
        let transport: RemoteTransport;
        // Each wait below, then everything again on the session open by then (found by review: one that
        // waited went on the session found lost meanwhile, or past a wait it had gone through before).
        for (;;) {
          try {
            // Without waiting a turn when the session is open: the request leaves before the next read.
            const open = this.#openTransport();
            // Past its time, after an attempt to open a session failed while it waited: it fails as that
            // one did, and does not wait out another (found by QA: twice --connect-timeout, for a legacy SSE
            // stream that sent no endpoint event).
            if (open === undefined && this.#session === undefined && Date.now() >= deadline) {
              const failure = this.#lastOpenFailure;
              if (failure !== undefined && failure.at >= started) return this.#fail(message, failure.reason);
            }
            transport = open ?? await this.#connection();
          } catch (error) {
            this.#fail(message, error instanceof Error ? error.message : String(error));
            return;
          }
          // Not before a message written earlier that is to go again (found by QA: they went in the order
          // of their back-offs).
          if (this.#goingAgain.size !== 0 && this.#goingAgain.anyBefore(place)) {
            await this.#goingAgain.before(place);
            continue;
          }
          // The first time, after the messages before it are written (see #writtenAll).
          if (!waitedForWrites) {
            waitedForWrites = true;
            const marks = request === undefined ? this.#writtenAll : this.#writtenOthers;
            if (!marks.allBefore(place)) {
              await marks.before(place);
              continue;
            }
          }
          // A notification or an answer goes after the long message before it (see LONG_MESSAGE), or one
          // on a connection opened for it; on the session open once that is through (found by QA: one whose
          // session ended meanwhile was lost).
          if (request === undefined && this.#held.size !== 0 && this.#held.anyBefore(place)) {
            await this.#held.before(place);
            continue;
          }
          break;
        }
        // Answered by the relay meanwhile (--request-timeout): it goes no more. One the client cancelled goes,
        // and its cancellation after it, as the client wrote them; but not again (found by review: one that
        // found its session lost ran on the next, after its cancellation, and kept its stream there).
        if (pending?.abandoned || (pending?.cancelled && attempt > 0)) return;
        const generation = this.#generation;
        // An answer to a request of a session lost since: its server is gone, and another of the same id
        // may be the next one's (found by review: refused with 404, it went again, to the new server).
        if (askedIn !== undefined && askedIn !== generation) {
          this.#logger.debug("the client's answer to {id}, a request of a lost session, dropped", {
            id: JSON.stringify((message as JsonRpcResponse).id),
          });
          return;
        }
        if (pending !== undefined) {
          pending.generation = generation;
          pending.accepted = false;
          pending.transport = transport;
        }
        // The session's replayed handshake sent it already (found by QA: it went twice, the client's own
        // after messages written later). Once: a client that initializes again sends its own after that
        // (found by review: it was skipped too).
        if (request?.method === "initialize") this.#replayedInitialized.delete(transport);
        else if (
          isNotification(message) && message.method === "notifications/initialized" &&
          this.#replayedInitialized.delete(transport)
        ) return;
        const order = this.#orderOf(place, json !== undefined && json.length > LONG_MESSAGE, generation);
        this.#onItsWay.set(place, generation);
        try {
          const sending = transport.send(message, json, order);
          // Cancelled by the client before it went (see `handleClientMessage`): let go once that is out.
          if (pending?.cancelSent !== undefined) transport.letGo?.(request!.id, pending.cancelSent);
          // The stream of the server's own messages opens once this is through, and the messages written
          // after it wait for that, not only for this to be written (found by QA: a call written right after
          // went first, and a request the server made during it on that stream was lost).
          if (isNotification(message) && message.method === "notifications/initialized") {
            transport.listen(sending);
          }
          await sending;
          this.#onItsWay.delete(place);
          order.received();
          if (pending !== undefined) this.#accepted(request!.id, pending, transport, generation);
          this.#warnedUnreachable = false;
          return;
        } catch (error) {
          this.#onItsWay.delete(place);
          order.received();
          if (!(error instanceof RemoteError)) throw error;
          // It never reached the server: a time-out meanwhile has nothing there to cancel (found by QA: a call
          // refused with 503 got mcp-proxy's cancellation).
          if (pending?.transport === transport && NOT_SENT.has(error.kind)) pending.transport = undefined;
          if (this.#shouldFallBack(message, transport, error)) {
            this.#fallBackToSse(error);
            continue;
          }
          if (error.kind === "session-expired" && !reinitialized && request?.method !== "initialize") {
            reinitialized = true;
            // It never reached the lost session (not `accepted`): it goes again on the new one.
            this.#goingAgain.add(place);
            this.#sessionLost(generation, error.message);
            continue;
          }
          // Another message learned first that the session was gone, and closed it before this one went (say,
          // many calls waiting out a restart of the server): it goes on the new session.
          if (error.kind === "closed" && !this.#closed && generation !== this.#generation && resent++ < 3) {
            this.#goingAgain.add(place);
            continue;
          }
          let reason = error.message;
          const unreachable = error.kind === "unreachable" || gatewayMissedServer(error, request?.method);
          if (unreachable && Date.now() < deadline && !this.#closed) {
            // Once for an outage, not once for each message that waits it out.
            if (!this.#warnedUnreachable) this.#logger.warn("{reason}; retrying", { reason });
            this.#warnedUnreachable = true;
            this.#goingAgain.add(place);
            await sleep(
              Math.min(backoffDelay(attempt), Math.max(0, deadline - Date.now())),
              this.#stop.signal,
            );
            continue;
          }
          if (error.kind === "busy" && !this.#closed) {
            const wait = busyDelay(error, attempt);
            if (Date.now() + wait < deadline) {
              if (!this.#warnedUnreachable) {
                this.#logger.warn("{reason}; trying again in {seconds} s", { reason, seconds: wait / 1000 });
              }
              this.#warnedUnreachable = true;
              this.#goingAgain.add(place);
              await sleep(wait, this.#stop.signal);
              continue;
            }
            // The wait it asked for, or the time spent waiting out such answers (found by QA: "it asked to
            // wait 1 s, beyond --connect-timeout" after 29 s of them).
            const waited = Date.now() - started;
            reason += waited < wait
              ? `; it asked to wait ${(error.retryAfterMs ?? wait) / 1000} s, beyond --connect-timeout`
              : `; still so after ${Math.round(waited / 1000)} s (--connect-timeout)`;
          }
          this.#fail(message, reason);
          return;
        }
      }
    } finally {
      // Gone, or not to go (answered meanwhile, failed): those after it wait for it no more.
      if (this.#goingAgain.size !== 0) this.#goingAgain.delete(place);
      this.#taken(place);
    }
  }

  /**
   * The server took the request `id` (`pending`) on `transport`, of session `generation`. Over legacy SSE
   * its answer is to come on that session's stream: if the session was lost meanwhile, none can come.
   */
  #accepted(id: RequestId, pending: PendingRequest, transport: RemoteTransport, generation: number): void {
    pending.accepted = true;
    if (transport.kind === "sse" && generation !== this.#generation && this.#pending.get(id) === pending) {
      this.#answerWithError(id, ErrorCode.ConnectionClosed, "the connection to the server broke");
    }
  }

  /**
   * What a transport tells of the message at `place` on its way: once it is written, the messages after it
   * may go (see {@link #writtenAll}), and, if it is going again, those after it that waited for that (see
   * {@link #goingAgain}: not once answered, as a refusal is an answer too, and it goes again then). A long
   * one, or one written on a connection opened for it, holds the notifications and answers after it longer
   * (see {@link LONG_MESSAGE}): the server may read it after one written later on a connection it kept
   * (found by QA: a cancellation ran ahead of its call).
   */
  #orderOf(place: number, long: boolean, generation: number): SendOrder {
    if (long) this.#held.add(place);
    return new MessageOrder(this.#onWritten, this.#onTaken, place, long, generation);
  }

  /** The message at `place` (`long`, gone on session `generation`) is written: see {@link #orderOf}. */
  readonly #onWritten = (place: number, long: boolean, generation: number, fresh: boolean | undefined) => {
    // Nothing held once the relay is closed (its timer would outlive it).
    if (!this.#closed) {
      this.#held.add(place);
      (long || fresh !== false ? this.#heldNoLonger : this.#heldKeptNoLonger).add(place);
    }
    // Not when written to a session lost meanwhile: it may be refused there, and go again (found by
    // review).
    if (this.#goingAgain.size !== 0 && generation === this.#generation) this.#goingAgain.delete(place);
    this.#writtenAll.done(place);
    this.#writtenOthers.done(place);
  };

  /** The message at `place` is taken by the server (its POST answered), or failed: see {@link #orderOf}. */
  readonly #onTaken = (place: number) => this.#taken(place);

  /** The message at `place` is through: those after it wait for it no more. */
  #taken(place: number): void {
    this.#writtenAll.done(place);
    this.#writtenOthers.done(place);
    if (this.#held.size !== 0) {
      this.#held.delete(place);
      this.#heldNoLonger.delete(place);
      this.#heldKeptNoLonger.delete(place);
    }
  }

  #shouldFallBack(message: JsonRpcMessage, transport: RemoteTransport, error: RemoteError): boolean {
    return this.#options.transport === "auto" && !this.#fallenBack && this.#kind === undefined &&
      transport.kind === "streamablehttp" && isRequest(message) && message.method === "initialize" &&
      error.kind === "http" && NOT_STREAMABLE.includes(error.status!);
  }

  #fallBackToSse(error: RemoteError): void {
    this.#fallenBack = true;
    this.#fallbackReason = error.message;
    // No session was open: the first POST found the server speaks the other transport.
    this.#openedAt = 0;
    this.#logger.info(
      "the server does not speak Streamable HTTP ({reason}); using the legacy SSE transport",
      {
        reason: error.message,
      },
    );
    const old = this.#session;
    this.#session = undefined;
    this.#generation++;
    old?.then((transport) => this.#retire(transport), () => {});
  }

  /** A message that cannot be delivered: a request gets an error answer, anything else a log line. */
  #fail(message: JsonRpcMessage, reason: string): void {
    // A server that speaks neither transport: what it answered first (its own error, often) counts too.
    if (this.#fallbackReason !== undefined && isRequest(message) && message.method === "initialize") {
      reason = `${reason}; before that, over Streamable HTTP, ${this.#fallbackReason}`;
    }
    if (isRequest(message)) {
      if (!this.#pending.has(message.id)) return;
      this.#answerWithError(message.id, ErrorCode.ConnectionClosed, reason);
    } else {
      this.#logger.warn("a message to the server was lost: {reason}", { reason });
    }
  }

  #answerWithError(id: RequestId, code: number, reason: string): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    pending.abandoned = true;
    this.#forget(id);
    // The id as written: an integer beyond 2^53 is an object that keeps its digits.
    this.#logger.warn("{method} ({id}) failed: {reason}", {
      method: pending.method,
      id: JSON.stringify(id),
      reason,
    });
    // The id as the client spelled it (`1e3`, `"\u00e9"`).
    this.#options.toClient(errorResponse(pending.answerId ?? id, code, `mcp-proxy: ${reason}`));
  }

  #forget(id: RequestId | undefined): void {
    if (id === undefined) return;
    const pending = this.#pending.get(id);
    if (pending?.method === LISTEN) this.#listening--;
    // Answered (by the relay, say, while it waited out a back-off) or cancelled: it holds none of the
    // messages after it (found by review: they waited for its back-off, and timed out unsent).
    if (pending?.place !== undefined && this.#goingAgain.size !== 0) this.#goingAgain.delete(pending.place);
    this.#initializing.get(id)?.resolve();
    this.#initializing.delete(id);
    this.#timeouts?.delete(id);
    this.#pending.delete(id);
    this.#checkDrained();
  }

  #timedOut(id: RequestId, ms: number): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    // Revision 2026-07-28 has no notification for it: closing the request's stream cancels it (one not
    // sent yet goes no more; one refused and being mended has none to close). A wire that cannot close it
    // (legacy SSE) is told with the notification, as for earlier revisions.
    const closes = pending.closable &&
      (pending.transport === undefined || pending.transport.abandon !== undefined);
    // Told before it is answered, so that the end of input waits for the notification (found at stop 31: it
    // was lost when the answer let the relay stop). Only where the request went: one that never left goes
    // no more, and an `initialize` is never cancelled (the spec forbids it).
    if (!closes && pending.transport !== undefined && pending.method !== "initialize") {
      const told = this.#cancelOwn(id, pending.transport);
      // Its stream is closed once the notification is out: the server may keep it open (see `letGo`).
      pending.transport.letGo?.(id, told);
    }
    this.#answerWithError(
      id,
      ErrorCode.RequestTimeout,
      `no answer within ${ms / 1000} s (--request-timeout)`,
    );
    if (closes) pending.transport?.abandon?.(id);
  }

  /**
   * Sends mcp-proxy's own cancellation of the request `id` on the wire it went on, and on no other: a new
   * session does not know it. The end of input waits for it, up to {@link OWN_CANCEL_WAIT_MS}: the server
   * that let the request time out may not answer this either. Resolves when it went, or that wait is over.
   */
  #cancelOwn(id: RequestId, transport: RemoteTransport): Promise<void> {
    const cancel: JsonRpcMessage = {
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      // The id as the client spelled it (`1.0`, `1e3`): a server may tell ids apart by their JSON text.
      params: { requestId: this.#pending.get(id)?.answerId ?? id, reason: "mcp-proxy: request timed out" },
    };
    this.#sending++;
    let counted = true;
    const over = Promise.withResolvers<void>();
    const done = () => {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", done);
      if (!counted) return;
      counted = false;
      this.#sending--;
      this.#checkDrained();
      over.resolve();
    };
    const timer = setTimeout(done, OWN_CANCEL_WAIT_MS);
    // Nor does its wait outlive the relay (found by review).
    this.#stop.signal.addEventListener("abort", done);
    const send = async () => {
      // After a long message on its way, as any notification (see LONG_MESSAGE): the request itself, say.
      if (this.#held.size !== 0) await this.#held.before(this.#written + 1);
      await transport.send(cancel);
    };
    send().catch((error) => {
      this.#logger.debug("the cancellation of {id} did not go: {error}", { id: JSON.stringify(id), error });
    }).finally(done);
    return over.promise;
  }

  // ---- sessions ---------------------------------------------------------------------------------

  /** The usable session: the current one, or a new one (with the client's initialize replayed). */
  #connection(): Promise<RemoteTransport> {
    if (this.#closed) return Promise.reject(new Error("the relay is closed"));
    if (this.#session === undefined) {
      const session = this.#open(this.#generation);
      this.#session = session;
      session.then(
        (transport) => {
          this.#lastOpenFailure = undefined;
          if (this.#session === session) this.#opened = { session, transport };
        },
        // A failed attempt is forgotten, so that the next message tries again.
        (error) => {
          const reason = error instanceof Error ? error.message : String(error);
          this.#lastOpenFailure = { reason, at: Date.now() };
          if (this.#session === session) this.#session = undefined;
        },
      );
    }
    return this.#session;
  }

  /** The transport of the current session if it is open; else undefined, and {@link #connection} waits. */
  #openTransport(): RemoteTransport | undefined {
    const opened = this.#opened;
    return opened !== undefined && opened.session === this.#session && !this.#closed
      ? opened.transport
      : undefined;
  }

  async #open(generation: number): Promise<RemoteTransport> {
    const kind = this.#kind ??
      (this.#options.transport === "sse" || this.#fallenBack ? "sse" : "streamablehttp");
    const deadline = Date.now() + this.#options.connectTimeoutMs;
    for (let attempt = 0;; attempt++) {
      if (this.#closed) throw new Error("the relay is closed");
      const transport = this.#options.createTransport(kind);
      transport.onmessage = (message, json, refused) => this.#fromServer(message, transport, json, refused);
      transport.onsessionlost = (reason) => this.#sessionLost(generation, reason);
      this.#opening = transport;
      try {
        await transport.start();
        // A session that replaces a lost one is initialized again, as the client did the first time.
        if (this.#initialize !== undefined && this.#kind !== undefined) await this.#replay(transport);
        if (this.#openedAt > 0) this.#logger.info("connected to the server again");
        else if (attempt > 0) this.#logger.info("connected to the server");
        this.#openedAt = Date.now();
        return transport;
      } catch (error) {
        if (this.#opening === transport) this.#opening = undefined;
        // Everything under way on it ends too: a replayed initialize the server still holds, say.
        transport.close().catch(() => {});
        const kind = error instanceof RemoteError ? error.kind : undefined;
        // A server that refuses for now (429, 503) says how long to wait, or is given the back-off.
        const wait = kind === "busy" ? busyDelay(error as RemoteError, attempt) : backoffDelay(attempt);
        const retry = kind === "unreachable" || gatewayMissedServer(error as RemoteError, "initialize") ||
          (kind === "busy" && Date.now() + wait < deadline);
        if (!retry || Date.now() >= deadline || this.#closed) throw error;
        if (attempt === 0) this.#logger.warn("{reason}; retrying", { reason: (error as Error).message });
        await sleep(Math.min(wait, Math.max(0, deadline - Date.now())), this.#stop.signal);
      }
    }
  }

  /** Initializes a new session as the client initialized the first one, and restores its state. */
  async #replay(transport: RemoteTransport): Promise<void> {
    const answer = await this.#internalRequest(transport, "initialize", this.#initialize!.params);
    if (answer.error !== undefined) {
      throw new RemoteError(
        "http",
        `the server refused to initialize a new session: ${answer.error.message}`,
      );
    }
    const version = answer.result?.protocolVersion;
    if (typeof version === "string") transport.setProtocolVersion(version);
    if (this.#initialized) {
      await transport.send({ jsonrpc: "2.0", method: "notifications/initialized" });
      this.#replayedInitialized.add(transport);
      transport.listen();
    }
    if (this.#logLevel !== undefined) {
      await this.#internalRequest(transport, "logging/setLevel", this.#logLevel);
    }
    for (const uri of this.#subscriptions) {
      await this.#internalRequest(transport, "resources/subscribe", { uri });
    }
    this.#logger.info("opened a new session with the server and initialized it again");
  }

  /** Sends a request of the proxy's own; its answer never reaches the client. */
  async #internalRequest(
    transport: RemoteTransport,
    method: string,
    params: Record<string, unknown> | undefined,
  ): Promise<JsonRpcResponse> {
    const id = `${this.#internalIdPrefix}${this.#nextInternalId++}`;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped: (() => void) | undefined;
    const answer = new Promise<JsonRpcResponse>((resolve, reject) => {
      this.#internal.set(id, resolve);
      timer = setTimeout(
        () => reject(new RemoteError("lost", `the server did not answer ${method} in time`)),
        this.#options.connectTimeoutMs,
      );
      // Nor does the relay wait for it once it is closing (found by QA: a session reopened in the
      // background held the exit for --connect-timeout).
      stopped = () => reject(new RemoteError("closed", "the relay is closing"));
      if (this.#stop.signal.aborted) stopped();
      else this.#stop.signal.addEventListener("abort", stopped, { once: true });
    });
    // The time may run out while the request is still being sent (a server that answers with JSON only
    // when done): the answer's rejection then ends the wait, and is handled (found by review: it crashed
    // the process), as is a failure of the send after the answer came.
    const sent = transport.send({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
    sent.catch(() => {});
    answer.catch(() => {});
    try {
      await Promise.race([sent, answer]);
      return await answer;
    } finally {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", stopped!);
      this.#internal.delete(id);
    }
  }

  /** The session of `generation` is gone: forget it; the next message (or now, if initialized) opens another. */
  #sessionLost(generation: number, reason: string): void {
    if (generation !== this.#generation || this.#closed) return;
    this.#generation++;
    // The lost session's requests to the client: the next session knows none of them.
    this.#voidServerRequests();
    this.#opening = undefined;
    // The client's messages still on their way there: those refused go again before any written later.
    // Those the lost session took (their POSTs answered meanwhile) let the rest go; and so, after a moment,
    // do those it holds (a call running there).
    const onItsWay: number[] = [];
    for (const [place, sentOn] of this.#onItsWay) {
      if (sentOn === generation) onItsWay.push(place);
    }
    if (onItsWay.length > 0) {
      for (const place of onItsWay) this.#goingAgain.add(place);
      sleep(LOST_SESSION_GRACE_MS, this.#stop.signal).then(() => {
        for (const place of onItsWay) {
          if (this.#onItsWay.get(place) === generation) this.#goingAgain.delete(place);
        }
      });
    }
    const old = this.#session;
    this.#session = undefined;
    this.#logger.warn("lost the session with the server ({reason}); reconnecting", { reason });
    old?.then(
      (transport) => {
        // Legacy SSE answers come on the stream that ended: requests sent on it cannot be answered.
        if (transport.kind === "sse") {
          for (const [id, pending] of this.#pending) {
            if (pending.generation === generation && pending.accepted) {
              this.#answerWithError(
                id,
                ErrorCode.ConnectionClosed,
                `the connection to the server broke (${reason})`,
              );
            }
          }
        }
        return this.#retire(transport);
      },
      () => {},
    );
    if (!this.#initialized) return;
    // A session that is lost right after it opened would otherwise be reopened in a tight loop.
    this.#quickLosses = Date.now() - this.#openedAt < 5000 ? this.#quickLosses + 1 : 0;
    const delay = this.#quickLosses === 0 ? 0 : backoffDelay(this.#quickLosses + 1);
    sleep(delay, this.#stop.signal).then(() => {
      if (this.#closed || this.#session !== undefined) return;
      this.#connection().catch((error) =>
        this.#logger.error("cannot reconnect to the server: {error}", { error: error.message })
      );
    });
  }

  // ---- server → client --------------------------------------------------------------------------

  #fromServer(message: JsonRpcMessage, transport: RemoteTransport, json?: JsonText, refused?: boolean): void {
    if (this.#closed) return;
    if (!isResponse(message)) {
      // Of the current session only, or the one being opened (a request right after the replayed
      // initialize): a lost one's streams may still bring some (found by review: their ids may be those of
      // the new session's requests), also before the next session opens (found by review).
      const current = transport === this.#openTransport() || transport === this.#opening;
      if (isRequest(message)) {
        // One of a lost session can no longer be answered: the answer would go to the next session.
        if (!current) {
          this.#logger.debug("{method} ({id}) of a lost session dropped", {
            method: message.method,
            id: JSON.stringify(message.id),
          });
          return;
        }
        const spelled = (typeof json === "string" ? idSpelling(json, message.id) : undefined) ?? message.id;
        if (this.#inputEnded) return this.#refuseServerRequest(message.id, spelled);
        if (this.#voided.size !== 0 && this.#voided.has(message.id)) {
          return this.#passRenamed(message, spelled, json);
        }
        this.#serverRequests.set(message.id, spelled);
      } else if (message.method === "notifications/cancelled") {
        // Of a lost session: it names a request the client was told of already (void) or never saw, and
        // maybe the id of the next session's (found by review: that one was cancelled at the client).
        if (!current) {
          this.#logger.debug("a cancellation of a lost session dropped");
          return;
        }
        if (this.#serverRequests.size !== 0) {
          const cancelled = message.params?.requestId as RequestId;
          const renamed = this.#renamedFrom.get(cancelled);
          if (renamed !== undefined) return this.#cancelRenamed(message, renamed, json);
          this.#serverRequests.delete(cancelled);
        }
      }
      this.#options.toClient(message, json);
      return;
    }
    const response = message as JsonRpcResponse;
    const id = response.id;
    if (typeof id === "string" && this.#internal.has(id)) {
      this.#internal.get(id)!(response);
      return;
    }
    if (id === null || !this.#pending.has(id)) {
      this.#logger.debug("answer {id} from the server matches no waiting request; dropped", {
        id: JSON.stringify(id),
      });
      return;
    }
    const pending = this.#pending.get(id)!;
    // Only a refusal given as an HTTP error (before the server ran any of it): at most once holds.
    if (pending.again !== undefined && refused && response.error !== undefined) {
      this.#mend(id, pending, response, transport, json);
      return;
    }
    this.#answer(id, pending, response, transport, json);
  }

  /**
   * The server's request `message`, whose id the client may yet answer for a request of a lost session
   * (`#voided`), goes to the client under an id of mcp-proxy's own; its answer goes back under the
   * server's (`spelled`).
   */
  #passRenamed(message: JsonRpcRequest, spelled: RequestId, json: JsonText | undefined): void {
    let visible = `mcp-proxy-${++this.#renames}`;
    // Not one the server uses itself.
    while (this.#serverRequests.has(visible)) visible = `mcp-proxy-${++this.#renames}`;
    this.#serverRequests.set(visible, spelled);
    this.#renamed.set(visible, message.id);
    this.#renamedFrom.set(message.id, visible);
    const source = json === undefined ? undefined : asText(json);
    const text = source === undefined ? undefined : withRequestId(source, message.id, visible);
    const exact = text === undefined && source !== undefined ? parseLosslesslyOr(source, message) : message;
    this.#options.toClient({ ...exact, id: visible }, text);
  }

  /** The server's cancellation `message` of a request the client got as `visible` goes to it so. */
  #cancelRenamed(message: JsonRpcMessage, visible: RequestId, json: JsonText | undefined): void {
    this.#serverRequests.delete(visible);
    this.#forgetRenamed(visible);
    const source = json === undefined ? undefined : asText(json);
    const text = source === undefined
      ? undefined
      : withMemberReplaced(source, ["params", "requestId"], visible);
    const exact =
      (text === undefined && source !== undefined ? parseLosslesslyOr(source, message) : message) as
        & JsonRpcMessage
        & { params?: Record<string, unknown> };
    this.#options.toClient({ ...exact, params: { ...exact.params, requestId: visible } }, text);
  }

  /** The server's answer `response` to the client's request `id` goes to the client. */
  #answer(
    id: RequestId,
    pending: PendingRequest,
    response: JsonRpcResponse,
    transport: RemoteTransport,
    json?: JsonText,
  ): void {
    this.#forget(id);
    if (pending.method === "initialize" && response.result !== undefined) {
      this.#kind = transport.kind;
      // Any result is passed on, `null` too (found by QA: the answer was lost).
      const version = (response.result as { protocolVersion?: unknown } | null)?.protocolVersion;
      if (typeof version === "string") transport.setProtocolVersion(version);
    }
    this.#options.toClient(response, json);
    try {
      this.#options.onanswer?.(pending.method, response);
    } catch (error) {
      // What it learns is not worth an answer lost (found by review: a schema nested deep threw).
      this.#logger.debug("noting the answer to {method} failed: {error}", { method: pending.method, error });
    }
  }

  /**
   * The error answer `refusal` to the client's request `id`, kept for the {@link RefusalMender}: the request
   * goes again if it mends the refusal, else the answer goes on. Meanwhile the request may be cancelled or
   * time out: then nothing more happens here.
   */
  async #mend(
    id: RequestId,
    pending: PendingRequest,
    refusal: JsonRpcResponse,
    transport: RemoteTransport,
    json?: JsonText,
  ): Promise<void> {
    const { request, json: requestJson, note } = pending.again!;
    pending.again = undefined;
    let again = false;
    try {
      again = await this.#options.mender!.mend(
        request,
        refusal,
        note,
        (method, params) => this.#internalRequest(transport, method, params),
      );
    } catch (error) {
      this.#logger.debug("mending the refusal of {method} failed: {error}", {
        method: pending.method,
        error,
      });
    }
    if (this.#closed || this.#pending.get(id) !== pending) return;
    if (!again) {
      this.#answer(id, pending, refusal, transport, json);
      return;
    }
    this.#logger.debug("{method} {id} goes again", { method: pending.method, id: JSON.stringify(id) });
    this.#dispatch(request, requestJson);
  }
}
