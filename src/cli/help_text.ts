/**
 * What `mcp-proxy --help` prints, and the one-line usage printed with usage errors.
 *
 * @module
 */

/**
 * The usage line printed above a usage error, shortened from what argparse would print.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { USAGE_LINE } from "./help_text.ts";
 *
 * assert.ok(USAGE_LINE.startsWith("usage: mcp-proxy"));
 * ```
 */
export const USAGE_LINE = "usage: mcp-proxy [options] [command_or_url] [args ...]";

/**
 * The full help: usage forms, both modes and their HTTP endpoints, every option grouped by mode with its
 * meaning and default, and examples.
 *
 * @param version The proxy's version, shown in the first line.
 * @returns Text ending with a newline, ready to print to stdout.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./help_text.ts";
 *
 * assert.ok(helpText("1.2.3").includes("--named-server NAME COMMAND_STRING"));
 * ```
 */
export function helpText(version: string): string {
  return `mcp-proxy ${version}: bridge MCP transports, in either direction.

usage: mcp-proxy [options] URL
       mcp-proxy [options] [--] COMMAND [ARGS ...]
       mcp-proxy [options] --named-server NAME COMMAND_STRING [--named-server ...]
       mcp-proxy [options] --named-server-config FILE

Client mode, when the first argument is an http:// or https:// URL: connect to that remote MCP server
(SSE or Streamable HTTP) and serve it on this process's stdin/stdout.

Server mode, otherwise: spawn local stdio MCP servers and serve them over HTTP at
  /sse, /messages/            the default server (COMMAND), legacy SSE transport
  /mcp                        the default server, Streamable HTTP transport
  /servers/NAME/sse, /servers/NAME/messages/, /servers/NAME/mcp
                              the same for the named server NAME
  /status                     JSON: last activity and the configured servers
  /health                     200 when every server runs, else 503

positional arguments:
  command_or_url              a URL (client mode) or the default server's command (server mode);
                              env SSE_URL is a deprecated fallback for the URL
  args                        arguments for the default server's command; put them after -- when
                              any of them starts with -

client mode options:
  -H, --headers KEY VALUE     send this HTTP header with every request; repeatable, a later KEY
                              (case-insensitive) replaces an earlier one
  --transport {auto,sse,streamablehttp}
                              remote transport (default: auto = try Streamable HTTP, fall back to SSE)
  --api-access-token TOKEN    send "Authorization: Bearer TOKEN" (default: env API_ACCESS_TOKEN)
  --verify-ssl [VALUE]        verify TLS certificates: bare, true, 1, yes or on = verify (default);
                              false, 0, no or off = don't; anything else = path of a PEM CA bundle
  --no-verify-ssl             don't verify TLS certificates, same as --verify-ssl false
  --client-id ID              OAuth2 client-credentials client id (needs --client-secret)
  --client-secret SECRET      OAuth2 client secret (needs --client-id)
  --token-url URL             OAuth2 token endpoint (default: discovered from the server's metadata)
  --connect-timeout SECONDS   how long to keep trying to reach the server (and its token endpoint),
                              at start and after it dropped, before answering requests with an error
                              (default: 30)
  Authorization, strongest first: OAuth2 token > API_ACCESS_TOKEN > -H Authorization

server mode options:
  -e, --env KEY VALUE         environment variable for the default server; repeatable
  --cwd DIR                   working directory of the default server (default: the proxy's)
  --pass-environment, --no-pass-environment
                              pass the proxy's whole environment to every server (default: off)
  --named-server NAME COMMAND_STRING
                              serve a server at /servers/NAME/; COMMAND_STRING is split into words
                              like a POSIX shell does (quotes, backslashes), never run by a shell;
                              repeatable
  --named-server-config FILE  JSON file of named servers: {"mcpServers": {"NAME": {"command": ...,
                              "args": [...], "env": {...}}}}; --named-server flags are then ignored
  --port PORT                 port to listen on (default: 0 = any free port, logged at startup)
  --host HOST                 address to listen on (default: 127.0.0.1)
  --stateless, --no-stateless Streamable HTTP without sessions (default: off)
  --allow-origin ORIGIN       allow CORS requests from ORIGIN ("*" = any); repeatable, one origin
                              per flag (default: no CORS headers)
  --expose-header HEADER      add HEADER to Access-Control-Expose-Headers; repeatable
                              (mcp-session-id is always exposed)
  --allow-host HOST           also accept HOST in the Host and Origin headers; repeatable. Bound to
                              a loopback address, only localhost, 127.0.0.1 and [::1] are accepted
                              otherwise (DNS-rebinding protection: 403)
  --isolate-sessions          start a server process of its own for every client session, stopped
                              when the session ends (default: one process shared by all sessions)
  --session-idle-timeout SECONDS
                              close a Streamable HTTP session after this long without requests; 0 =
                              never (default: 0, or 600 with --isolate-sessions or --max-sessions)
  --no-restart                a server that exits stays down (default: restarted)
  --restart-delay SECONDS     wait before restarting a server that exited; doubles with each failure in
                              a row (default: 1)
  --restart-delay-max SECONDS longest wait between restarts (default: 30)
  --api-key KEY               require KEY as "Authorization: Bearer KEY" or "X-API-Key: KEY" on every
                              request but OPTIONS and /health; repeatable (rotation); also env
                              MCP_PROXY_API_KEY (default: no key needed)
  --max-body-size SIZE        largest request body, e.g. 4M (default: 4M; larger: 413)
  --max-sessions N            open sessions at most, all servers together (default: 0 = no limit;
                              more: 503)
  --sse-port PORT, --sse-host HOST
                              deprecated spellings of --port and --host

common options:
  --log-level LEVEL           DEBUG, INFO, WARNING, ERROR or CRITICAL, any case (default: INFO)
  --debug, --no-debug         same as --log-level DEBUG, and wins over it (default: off)
  --log-format FORMAT         text or json (one JSON object per line) (default: text)
  --request-timeout SECONDS   longest wait for one answer (server mode: from the server, and from a
                              client for the server's own requests; client mode: from the remote),
                              then error -32001 and a cancellation; 0 = no limit (default: 0)
  --max-line-size SIZE        longest stdio line read (default: 64M); a longer answer from a server
                              becomes an error answer
  -h, --help                  show this help and exit
  --version                   show the version and exit

Long options may be shortened to a unique prefix (--pass-env) and written --option=VALUE.
Exit status: 0 on a clean shutdown, 1 when there is nothing to run or the config file is bad,
2 for a malformed command line.

examples:
  # serve a stdio server on port 8080; its own options go after --
  mcp-proxy --port 8080 -- uvx mcp-server-fetch --user-agent=MyBot

  # give it environment and a working directory
  mcp-proxy --port 8080 -e GITHUB_TOKEN ghp_xxx --cwd /srv -- npx -y @modelcontextprotocol/server-github

  # two named servers, at /servers/fetch/ and /servers/time/
  mcp-proxy --port 8080 --named-server fetch 'uvx mcp-server-fetch' \\
            --named-server time 'uvx mcp-server-time --local-timezone "Europe/Paris"'

  # named servers from a config file, callable from a web page
  mcp-proxy --port 8080 --named-server-config servers.json --allow-origin https://app.example.com

  # a remote SSE server as a local stdio server
  mcp-proxy http://localhost:8080/sse

  # a remote Streamable HTTP server, with a header
  mcp-proxy --transport streamablehttp -H Authorization 'Bearer YOUR_TOKEN' https://example.com/mcp

  # OAuth2 client credentials (the token endpoint is discovered when --token-url is left out)
  mcp-proxy --client-id ID --client-secret SECRET --token-url https://auth.example.com/token \\
            https://example.com/mcp
`;
}
