/**
 * Reading a POST's body, which fails when the client goes away before it has sent all of it: a client's
 * doing, logged at DEBUG, not an error of the proxy.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";

/**
 * The body of `request`; undefined when it could not be read (the client closed the connection or
 * reset it mid-body), which `logger` notes at DEBUG. The caller answers 400: no one will read it.
 *
 * @example
 * ```ts
 * const bytes = await requestBody(request, logger);
 * if (bytes === undefined) return new Response("The request body could not be read", { status: 400 });
 * ```
 */
export async function requestBody(
  request: Request,
  logger: Logger,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    return await request.bytes();
  } catch (error) {
    logger.debug("the body of a request could not be read (the client went away?): {error}", { error });
    return undefined;
  }
}

/** What a request whose body could not be read is answered, should its client still be there. */
export const UNREADABLE_BODY = "Bad Request: the request body could not be read";

const decoder = new TextDecoder();
/**
 * Fatal: a body that is not UTF-8 is refused, not passed on with its bytes replaced by U+FFFD. Used only
 * for a text that holds U+FFFD: a fatal decoder is much slower (about 15 µs of a 1 KiB call's CPU).
 */
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/** What the client is told of a body that is not UTF-8. */
export const NOT_UTF8 = "Parse error: the body is not valid UTF-8";

/** A request body's text, or undefined when it is not UTF-8 (JSON is, RFC 8259 §8.1). */
export function bodyText(bytes: Uint8Array): string | undefined {
  const text = decoder.decode(bytes);
  if (!text.includes("\uFFFD")) return text;
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}
