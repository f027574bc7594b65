/** One base chain of a table: its hook line (`type nat hook postrouting priority srcnat`) and rules. */
export interface NftChain {
  readonly name: string;
  readonly hook: string;
  readonly rules: readonly string[];
}

/**
 * An nft script that replaces table `ip <table>` with `chains`, for `nft -f -`. Declaring,
 * deleting and re-adding the table in one script is one transaction: the kernel swaps the
 * whole table at once, and a table that did not exist yet is no error.
 */
export function ipTableRuleset(table: string, chains: readonly NftChain[]): string {
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    ...chains.flatMap((chain) => [`  chain ${chain.name} {`, `    ${chain.hook}; policy accept;`, ...chain.rules.map((rule) => `    ${rule}`), "  }"]),
    "}",
    "",
  ].join("\n");
}
