import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import { FailedPreconditionError, throwIfAborted, systemErrorCode } from "../../common/errors.js";
import { syncDirectory, writeFileAtomic } from "../../common/files.js";
import type { TlsMaterial } from "./credentials.js";

/**
 * File names of a node's TLS material inside its certificates directory. The key and its
 * certificate chain share one file so that one atomic rename replaces both: a crash can
 * never leave a certificate next to a key it does not belong to.
 */
export const tlsFiles = { ca: "ca.crt", node: "node.pem" } as const;
export const privateFileMode = 0o600;
export const publicFileMode = 0o644;

/** The file's text, or undefined when it does not exist (other errors are thrown). */
export async function readFileIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** Stores a node's TLS material in `directory` (created 0700), key and chain in one 0600 file. */
export async function saveTlsMaterial(directory: string, material: TlsMaterial, options: { signal?: AbortSignal } = {}): Promise<void> {
  throwIfAborted(options.signal);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(directory, tlsFiles.ca), material.caPem, { mode: publicFileMode });
  await writeFileAtomic(join(directory, tlsFiles.node), `${material.keyPem.trimEnd()}\n${material.certPem}`, { mode: privateFileMode });
  await syncDirectory(directory);
}

const privateKeyPattern = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----\n?/;

/**
 * Loads the material saveTlsMaterial stored; undefined when neither file exists (the node
 * has not joined). Throws FailedPreconditionError when one is missing or holds no key.
 */
export async function loadTlsMaterial(directory: string, options: { signal?: AbortSignal } = {}): Promise<TlsMaterial | undefined> {
  throwIfAborted(options.signal);
  const caPem = await readFileIfPresent(join(directory, tlsFiles.ca));
  const nodePem = await readFileIfPresent(join(directory, tlsFiles.node));
  if (caPem === undefined && nodePem === undefined) return undefined;
  const key = nodePem === undefined ? null : privateKeyPattern.exec(nodePem);
  if (caPem === undefined || nodePem === undefined || key === null) {
    throw new FailedPreconditionError(`${directory} holds only part of the node's TLS files: leave the cluster and join it again`);
  }
  return { caPem, keyPem: key[0], certPem: nodePem.replace(key[0], "").trimStart() };
}
