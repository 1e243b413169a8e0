/**
 * Knowing when a response body is finished with: read to its end, failed, or cancelled by the reader.
 *
 * @module
 */

/**
 * Returns a stream with the same chunks as `body` that calls `onEnd` once, after `body` was read to its
 * end, failed, or was cancelled (and the cancellation reached `body`).
 *
 * @example
 * ```ts
 * const body = onStreamEnd(response.body!, () => session.close());
 * return new Response(body, response);
 * ```
 */
export function onStreamEnd(body: ReadableStream<Uint8Array>, onEnd: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          end();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        controller.error(error);
        end();
      }
    },
    async cancel(reason) {
      try {
        await reader.cancel(reason);
      } finally {
        end();
      }
    },
  });
}
