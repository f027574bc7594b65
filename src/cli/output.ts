import type { Writable } from "node:stream";

export type OutputFormat = "table" | "json";

export function parseOutputFormat(value: string): OutputFormat {
  if (value === "table" || value === "json") return value;
  throw new Error(`unknown --format "${value}": use table or json`);
}

/** Binary units as docker prints them ("23.47GiB"). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value}B` : `${value.toFixed(2).replace(/\.?0+$/, "")}${units[unit]}`;
}

/** Left-aligned columns separated by three spaces, like docker's tables. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join("   ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

export function writeJson(out: Writable, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}
