/**
 * The proxy's version, read from `deno.json` so that one file holds it.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** The version of this mcp-proxy, e.g. `"0.1.0"`. */
export const VERSION: string = denoJson.version;
