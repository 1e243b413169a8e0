/**
 * Client mode: a remote SSE or Streamable HTTP MCP server as a local stdio server. Messages read on
 * stdin go to the server and messages from the server go to stdout, one JSON line each and unchanged;
 * stdout carries nothing else. It runs until stdin ends, stdout breaks, or a signal.
 *
 * @module
 */

import type { ClientModeOptions } from "./cli/command_line.ts";
import {
  authorizedClient,
  isTokenLike,
  urlSecrets,
  userInfoAuthorization,
} from "./client/authorized_fetch.ts";
import { applyNoProxyEverywhere, proxyConfigured, proxyUrls } from "./client/proxy_environment.ts";
import { ClientRelay } from "./client/client_relay.ts";
import { LegacySseClient } from "./client/legacy_sse_client.ts";
import {
  envelopeVersion,
  listAllTools,
  mendableCall,
  modernHeaders,
  ToolHeaderDeclarations,
} from "./modern_headers.ts";
import { ClientCredentials } from "./client/oauth_client_credentials.ts";
import type { RemoteTransport } from "./client/remote_transport.ts";
import { StreamableHttpClient } from "./client/streamable_http_client.ts";
import { createTlsFetch } from "./client/tls_fetch.ts";
import { JsonLineWriter, readJsonLines } from "./json_lines.ts";
import {
  answerToInvalid,
  ErrorCode,
  errorResponse,
  type TruncatedMessage,
  truncatedMessageKind,
} from "./jsonrpc.ts";
import { proxyLogger } from "./logging.ts";
import { watchParent } from "./parent_watch.ts";
import { standardInput } from "./standard_input.ts";

const logger = proxyLogger("client");
const decoder = new TextDecoder();

/**
 * The URL without its query, fragment and user info, which may hold secrets, and with `***` for each path
 * segment that looks like a token (found by QA: a secret some hosted servers take in the path was logged):
 * what the log shows.
 */
function redact(url: URL): string {
  const path = url.pathname.split("/").map((segment) => isTokenLike(segment) ? "***" : segment).join("/");
  return `${url.origin}${path}`;
}

/** What the log says of a stdin line dropped for its length, as its ends tell. */
function describeDropped(message: TruncatedMessage | undefined): string {
  const json = JSON.stringify;
  switch (message?.kind) {
    case "request":
      return `request ${json(message.id)} (${json(message.method)}); answered with an error`;
    case "notification":
      return `notification ${json(message.method)} (no "id" at either end)`;
    case "response":
      return `answer ${json(message.id)} to a request from the server; an error sent in its place`;
    default:
      return 'a line whose "id" and "method" cannot be read from its ends; unanswered';
  }
}

/**
 * Runs client mode until stdin ends, stdout breaks or `stop` resolves; then ends the remote session.
 * Throws `TlsConfigError` when the CA bundle cannot be read.
 */
export async function runClientMode(options: ClientModeOptions, stop: Promise<unknown>): Promise<void> {
  // Read now: once the parent has died, this process has another.
  const parent = Deno.ppid;
  const url = new URL(options.url);
  // And a proxy's credentials, which it may quote back in a refusal (found by QA: a 407 that did).
  const secrets = [url, ...proxyUrls()].flatMap((each) => urlSecrets(each));
  // The URL's user name and password go as `Authorization: Basic`, unless another is given (see README).
  const basic = userInfoAuthorization(url);
  url.username = "";
  url.password = "";
  const givesAuthorization = Object.keys(options.headers).some((name) =>
    name.toLowerCase() === "authorization"
  );
  const headers = basic === undefined || givesAuthorization
    ? options.headers
    : { ...options.headers, Authorization: basic };
  applyNoProxyEverywhere();
  const tls = createTlsFetch(options.verifySsl);
  if (options.verifySsl.kind === "no-verify" && proxyConfigured()) {
    // node:https, which does not verify, has no proxy support (found by QA: bypassed without a word).
    logger.warn(
      "--no-verify-ssl: requests go straight to the server, not through HTTP_PROXY, HTTPS_PROXY or ALL_PROXY",
    );
  }
  const oauth = options.oauth === undefined ? undefined : new ClientCredentials({
    ...options.oauth,
    resourceUrl: url.href,
    fetch: tls.fetch,
    // A token is fetched on the way to the server: it gets no longer than reaching it does.
    requestTimeoutMs: options.connectTimeoutMs,
  });
  const { fetch, scrub } = authorizedClient(tls.fetch, {
    headers,
    apiAccessToken: options.apiAccessToken,
    oauth,
    secrets,
  });
  const onwarning = (text: string) => logger.warn("{text}", { text });
  // What revision 2026-07-28 requests carry as headers, their tools' `x-mcp-header` arguments included.
  const toolHeaders = new ToolHeaderDeclarations();
  let listing: Promise<void> | undefined;
  const createTransport = (kind: "streamablehttp" | "sse"): RemoteTransport =>
    kind === "sse"
      ? new LegacySseClient({ url, fetch, scrub, onwarning, endpointTimeoutMs: options.connectTimeoutMs })
      : new StreamableHttpClient({
        url,
        fetch,
        scrub,
        onwarning,
        resumeWindowMs: options.connectTimeoutMs,
        requestHeaders: (message) => modernHeaders(message, toolHeaders),
      });

  let stdoutBroken!: () => void;
  const stdoutGone = new Promise<void>((resolve) => stdoutBroken = resolve);
  // Written directly, not through a stream: one op per write, and no stream machinery per line.
  const stdout = new JsonLineWriter(Deno.stdout, (error) => {
    logger.error("cannot write to stdout ({error}); stopping", { error });
    stdoutBroken();
  });
  const relay = new ClientRelay({
    transport: options.transport,
    createTransport,
    toClient: (message, json) => stdout.write(message, json),
    connectTimeoutMs: options.connectTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    logger,
    onanswer: (method, response) => {
      if (method === "tools/list" && response.result !== undefined) toolHeaders.learn(response.result);
    },
    // As the wire sees it: a request it gives the revision's headers (it can close that one's stream).
    cancelsByClosing: (request) => modernHeaders(request, toolHeaders) !== undefined,
    // A call refused for headers of a tool not listed yet: listed, and sent again with them.
    mender: {
      // Noted: whether the tool was known when the call went (a call refused for what was known is not).
      keep: (request) => {
        if (request.method !== "tools/call" || envelopeVersion(request) === undefined) return undefined;
        const name = request.params?.name;
        return typeof name === "string" && toolHeaders.knows(name);
      },
      mend: async (request, refusal, knewTool, ask) => {
        const mendable = mendableCall(request, refusal, knewTool === true);
        if (mendable === undefined) return false;
        // One listing for the calls refused together; none for a tool listed since the call went.
        if (!toolHeaders.knows(mendable.tool)) {
          listing ??= listAllTools(ask, mendable.envelope, toolHeaders).finally(() => listing = undefined);
          await listing;
        }
        return toolHeaders.declares(mendable.tool);
      },
    },
  });

  logger.info("relaying stdio to {url} (transport: {transport})", {
    url: redact(url),
    transport: options.transport,
  });
  const stdin = standardInput();
  logger.debug("reading stdin {how}", { how: stdin.fromEventLoop ? "from the event loop" : "as a file" });
  const stdinDone = readJsonLines(stdin.source, options.maxLineBytes, {
    onMessage: (message, line) => relay.handleClientMessage(message, line),
    onInvalid: (why, line, value) => {
      logger.warn("stdin: a line that is not a JSON-RPC message ({why}): {line}", { why, line });
      const answer = answerToInvalid(why, value, line);
      if (answer === undefined) return;
      // A batch's answers go as one line, an array, as JSON-RPC answers a batch.
      if (Array.isArray(answer)) stdout.write(answer[0], JSON.stringify(answer));
      else stdout.write(answer);
    },
    onOversize: (bytes, head, tail) => {
      // Every request gets an answer: one too long to read gets an error, if its id can be found.
      const max = options.maxLineBytes;
      const dropped = truncatedMessageKind(decoder.decode(head), decoder.decode(tail));
      logger.error("stdin: a {bytes}-byte line is over the limit (--max-line-size {max}); skipped: {what}", {
        bytes,
        max,
        what: describeDropped(dropped),
      });
      if (dropped?.kind === "request") {
        const why = `mcp-proxy: the request is ${bytes} bytes, over --max-line-size (${max})`;
        stdout.write(errorResponse(dropped.spelled ?? dropped.id, ErrorCode.InvalidRequest, why));
      } else if (dropped?.kind === "response") {
        // The server's request gets an answer too, rather than wait for one that never comes: its id as
        // written, and its value for the relay to match (found by review: it was refused again at the end).
        const why = `mcp-proxy: the client's answer is ${bytes} bytes, over --max-line-size (${max})`;
        const answer = errorResponse(dropped.id, ErrorCode.InternalError, why);
        const written = dropped.spelled === undefined
          ? undefined
          : JSON.stringify(errorResponse(dropped.spelled, ErrorCode.InternalError, why));
        relay.handleClientMessage(answer, written);
      }
    },
    onError: (error) => logger.error("stdin: {error}", { error }),
  });

  // At the end of input, the answers still on their way are delivered first, unless the process that
  // started mcp-proxy is gone (nobody is left to read them).
  const parentGone = Promise.withResolvers<string>();
  let parentWatch: ReturnType<typeof setInterval> | undefined;
  const why = await Promise.race([
    stdinDone.then(() => {
      relay.inputEnded();
      parentWatch = watchParent(
        parent,
        () => parentGone.resolve("the process that started mcp-proxy is gone, and nobody else reads stdout"),
      );
      return relay.drained();
    }).then(() => "end of input"),
    stdoutGone.then(() => "stdout closed"),
    stop.then((signal) => String(signal)),
    parentGone.promise,
  ]);
  clearInterval(parentWatch);
  logger.info("stopping ({why})", { why });
  await relay.close(`stopping (${why})`);
  await stdout.close();
  tls.close();
}
