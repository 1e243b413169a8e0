/**
 * The benchmark's table: one row per case and path, with the direct path's value, the proxy's, their
 * ratio, and the target for that row with whether it is met.
 *
 * @module
 */

/** One row of the table. */
export interface Row {
  case: string;
  direct: string;
  proxy: string;
  ratio: string;
  target: string;
  /** Whether the target is met; undefined where the row has no target. */
  met?: boolean;
}

/** Milliseconds, with a precision that suits their size. */
export function ms(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return "—";
  if (value < 10) return `${value.toFixed(3)} ms`;
  if (value < 100) return `${value.toFixed(1)} ms`;
  return `${Math.round(value)} ms`;
}

/** Calls per second, rounded, with thousands separated. */
export function rate(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return "—";
  return `${Math.round(value).toLocaleString("en-US")} calls/s`;
}

/** KiB as MiB, one decimal. */
export function mib(kib: number | undefined, sign = false): string {
  if (kib === undefined || Number.isNaN(kib)) return "—";
  const value = kib / 1024;
  return `${sign && value >= 0 ? "+" : ""}${value.toFixed(1)} MiB`;
}

/** Microseconds, rounded. */
export function micros(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return "—";
  return `${Math.round(value)} µs`;
}

/** `proxy / direct`, two decimals and a `×`. */
export function ratio(proxy: number | undefined, direct: number | undefined): string {
  if (proxy === undefined || direct === undefined || !(direct > 0)) return "—";
  return `${(proxy / direct).toFixed(2)}×`;
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|");
}

/** The rows as a markdown table, columns padded to line up. */
export function markdownTable(rows: Row[]): string {
  const header = ["case", "direct", "proxy", "ratio", "target", "met"];
  const cells = rows.map((row) =>
    [
      row.case,
      row.direct,
      row.proxy,
      row.ratio,
      row.target,
      row.met === undefined ? "" : row.met ? "✓" : "✗",
    ].map(escapeCell)
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((line) => [...line[column]].length))
  );
  const line = (values: string[]) =>
    `| ${
      values.map((value, column) => value + " ".repeat(widths[column] - [...value].length)).join(" | ")
    } |`;
  return [
    line(header),
    `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`,
    ...cells.map(line),
  ].join("\n");
}
