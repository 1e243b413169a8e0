/**
 * The proxy the environment sets for client mode's requests (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, in
 * either case, and `NO_PROXY`), read as Deno's `fetch` reads it: whether one is set at all (requests then go
 * through `fetch`), which would carry a request to a URL (for an error's wording), and the URLs, whose
 * credentials a proxy may quote back.
 *
 * @module
 */

const PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/**
 * `NO_PROXY=*` turns every proxy off, as curl reads it, and Deno's `fetch` would not (found by QA): the
 * proxy variables are removed from this process's environment, before any `fetch` reads them. Call at
 * start.
 */
export function applyNoProxyEverywhere(): void {
  try {
    if (!["NO_PROXY", "no_proxy"].some((name) => Deno.env.get(name)?.trim() === "*")) return;
    for (const name of PROXY_VARIABLES) Deno.env.delete(name);
  } catch {
    // Without --allow-env, fetch cannot read them either.
  }
}

/** Whether `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` (either case) names a proxy. */
export function proxyConfigured(): boolean {
  return proxyVariablesSet().length > 0;
}

/** The names of the proxy variables set (not empty) in the environment. */
function proxyVariablesSet(): string[] {
  try {
    return PROXY_VARIABLES.filter((name) => (Deno.env.get(name) ?? "") !== "");
  } catch {
    // Without --allow-env the fallback cannot read them either.
    return [];
  }
}

/**
 * The proxies the proxy variables name, as URLs (one without a scheme is taken as http); those that are
 * not URLs are left out. For their credentials, which a proxy may quote back.
 */
export function proxyUrls(): URL[] {
  const urls: URL[] = [];
  for (const name of proxyVariablesSet()) {
    const value = Deno.env.get(name)!.trim();
    try {
      urls.push(new URL(value.includes("://") ? value : `http://${value}`));
    } catch {
      // Not a URL: fetch cannot use it either.
    }
  }
  return urls;
}

/**
 * The names of the proxy variables whose proxy Deno's `fetch` would send a request to `url` through: those
 * for its scheme (`HTTP_PROXY` for http, `HTTPS_PROXY` for https) and `ALL_PROXY`, none when `NO_PROXY`
 * names its host as Deno reads it (see {@link noProxyNames}).
 */
export function proxiesFor(url: URL): string[] {
  const scheme = url.protocol === "https:" ? "https_proxy" : url.protocol === "http:" ? "http_proxy" : "";
  const names = proxyVariablesSet().filter((name) => {
    const lower = name.toLowerCase();
    return lower === scheme || lower === "all_proxy";
  });
  if (names.length === 0) return names;
  let noProxy = "";
  try {
    noProxy = Deno.env.get("NO_PROXY") ?? Deno.env.get("no_proxy") ?? "";
  } catch {
    // Unreadable: as if unset.
  }
  return noProxyNames(noProxy, url.hostname) ? [] : names;
}

/**
 * Whether `NO_PROXY` (its text) names `hostname` (as a URL has it) as Deno's fetch reads it (found by
 * review, checked against it): an address by an entry that is the same address (IPv6 ones as parsed:
 * `0:0::1` is `::1`) or a range it is in (`127.0.0.0/8`, `fd00::/8`); a name by `*`, by itself or by a
 * domain it is in (`example.com` or `.example.com` for `api.example.com`), compared as written (`LOCALHOST`
 * is not `localhost`, nor `example.com.` `example.com`).
 */
function noProxyNames(noProxy: string, hostname: string): boolean {
  const bracketed = hostname.startsWith("[");
  const host = bracketed ? hostname.slice(1, -1) : hostname;
  const address = bracketed ? ipv6Address(host) : ipv4Address(host);
  return noProxy.split(",").some((written) => {
    const entry = written.trim();
    if (address !== undefined) {
      const [base, bits, ...rest] = entry.split("/");
      const range = ipv4Address(base) ?? ipv6Address(base);
      if (range === undefined || range.bits !== address.bits || rest.length > 0) return false;
      if (bits === undefined) return range.value === address.value;
      if (!/^\d{1,3}$/.test(bits) || Number(bits) > address.bits) return false;
      const shift = BigInt(address.bits - Number(bits));
      return range.value >> shift === address.value >> shift;
    }
    if (entry === "*") return true;
    const domain = entry.startsWith(".") ? entry.slice(1) : entry;
    return host === domain || host.endsWith(`.${domain}`);
  });
}

/** An IP address as a number, and how many bits it has. */
interface IpAddress {
  value: bigint;
  bits: 32 | 128;
}

/** `text` as an IPv4 address (four decimal parts, none with a leading zero), or undefined. */
function ipv4Address(text: string): IpAddress | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^(0|[1-9]\d{0,2})$/.test(part) && Number(part) < 256)) {
    return undefined;
  }
  return { value: parts.reduce((total, part) => total * 256n + BigInt(part), 0n), bits: 32 };
}

/** `text` (without brackets) as an IPv6 address, or undefined. */
function ipv6Address(text: string): IpAddress | undefined {
  if (!text.includes(":") || text.includes("[")) return undefined;
  let normal: string;
  try {
    // As a URL writes it: hexadecimal groups only (an IPv4 tail too), one `::` at most.
    normal = new URL(`http://[${text}]`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const [start, end] = normal.split("::");
  const head = start === "" ? [] : start.split(":");
  const tail = end === undefined || end === "" ? [] : end.split(":");
  const groups = [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail];
  return { value: groups.reduce((total, group) => total * 65536n + BigInt(`0x${group}`), 0n), bits: 128 };
}
