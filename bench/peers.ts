/**
 * The peers the issue compares against, found where they are installed: `node_modules/.bin` of the
 * checkout, `.bench-peers/node_modules/.bin` (the prefix {@link INSTALL_COMMAND} uses), then `PATH`. A
 * binary counts only when it belongs to the npm package of that name (a `mcp-proxy` on `PATH` may be the
 * Python one, or this project).
 *
 * @module
 */

/** A peer package and the binary it provides. */
export interface PeerPackage {
  /** npm package name, which is also the binary's name. */
  name: "supergateway" | "mcp-proxy" | "mcp-remote";
  /** The version the issue measured. */
  version: string;
  /** How the table names it. */
  label: string;
}

/** The peers of the issue, at the versions it names. */
export const PEER_PACKAGES: readonly PeerPackage[] = [
  { name: "supergateway", version: "4.0.0", label: "supergateway" },
  { name: "mcp-proxy", version: "6.7.19", label: "mcp-proxy (npm)" },
  { name: "mcp-remote", version: "0.15.1", label: "mcp-remote" },
];

/** The command that installs every peer where {@link findPeers} looks first (run in the checkout). */
export const INSTALL_COMMAND = "npm install --prefix .bench-peers --no-audit --no-fund " +
  PEER_PACKAGES.map((peer) => `${peer.name}@${peer.version}`).join(" ");

/** A peer that is installed. */
export interface FoundPeer extends PeerPackage {
  /** The binary to run. */
  bin: string;
  /** The version installed (from its package.json). */
  installed: string;
}

/** What {@link findPeers} found, and why the others are missing. */
export interface PeerSearch {
  found: FoundPeer[];
  missing: { peer: PeerPackage; why: string }[];
}

/** The package that owns `file`: the nearest package.json above it that has a name. */
function owningPackage(file: string): { name: string; version?: string } | undefined {
  let dir = file.slice(0, file.lastIndexOf("/"));
  for (let depth = 0; depth < 8 && dir !== ""; depth++) {
    try {
      const manifest = JSON.parse(Deno.readTextFileSync(`${dir}/package.json`));
      if (typeof manifest.name === "string") return manifest;
    } catch {
      // No package.json here, or not JSON: look further up.
    }
    dir = dir.slice(0, dir.lastIndexOf("/"));
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Looks for each peer's binary in `node_modules/.bin` of `root`, `root/.bench-peers`, then `PATH`. */
export function findPeers(root: string): PeerSearch {
  const dirs = [
    `${root}/node_modules/.bin`,
    `${root}/.bench-peers/node_modules/.bin`,
    ...(Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== ""),
  ];
  const search: PeerSearch = { found: [], missing: [] };
  for (const peer of PEER_PACKAGES) {
    const rejected: string[] = [];
    let found: FoundPeer | undefined;
    for (const dir of dirs) {
      const bin = `${dir}/${peer.name}`;
      if (!isExecutableFile(bin)) continue;
      const real = Deno.realPathSync(bin);
      const owner = owningPackage(real);
      if (owner?.name !== peer.name) {
        rejected.push(`${bin} (${real}) is not the npm package ${peer.name}`);
        continue;
      }
      found = { ...peer, bin, installed: owner.version ?? "?" };
      break;
    }
    if (found !== undefined) search.found.push(found);
    else search.missing.push({ peer, why: rejected.length > 0 ? rejected.join("; ") : "not installed" });
  }
  return search;
}
