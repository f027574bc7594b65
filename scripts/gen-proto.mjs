#!/usr/bin/env node
// Regenerates src/gen/ (TypeScript types for every .proto under proto/) from scratch, so that
// generated code is never hand-edited and never stale. The runtime loads the same .proto
// files with the options in src/rpc/proto.ts; the flags here must match them.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const protoDir = join(root, "proto");
const outDir = join(root, "src", "gen");

function listProtos(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listProtos(path);
    return entry.name.endsWith(".proto") ? [relative(protoDir, path)] : [];
  });
}

rmSync(outDir, { recursive: true, force: true });
const bin = join(root, "node_modules", ".bin", "proto-loader-gen-types");
execFileSync(
  bin,
  [
    "--grpcLib=@grpc/grpc-js",
    "--longs=Number",
    "--enums=String",
    "--bytes=Buffer",
    "--defaults",
    "--oneofs",
    "--includeComments",
    `--includeDirs=${protoDir}`,
    `--outDir=${outDir}`,
    ...listProtos(protoDir).sort(),
  ],
  { stdio: "inherit" },
);
// proto-loader emits extension-less relative imports, which ES module resolution rejects;
// add the ".js" that the compiled files will have.
function listGenerated(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? listGenerated(path) : [path];
  });
}
for (const file of listGenerated(outDir)) {
  const text = readFileSync(file, "utf8");
  writeFileSync(file, text.replace(/(from '\.{1,2}\/[^']*?)(?<!\.js)'/g, "$1.js'"));
}
