import { mkdir } from "node:fs/promises";
import { join } from "node:path";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError, throwIfAborted } from "../../common/errors.js";
import { syncDirectory, writeFileAtomic } from "../../common/files.js";
import { privateFileMode, publicFileMode, readFileIfPresent } from "../../rpc/tls/index.js";
import { certificateAuthorityFromPem, type CertificateAuthority } from "./authority.js";

/** File names inside the manager's CA directory. */
export const rootCaCertFile = "root-ca.crt";
export const rootCaKeyFile = "root-ca.key";

/** Stores the CA's certificate and key (mode 0600) in `directory`, creating it (0700) if needed. */
export async function saveCertificateAuthority(directory: string, authority: CertificateAuthority, options: { signal?: AbortSignal } = {}): Promise<void> {
  throwIfAborted(options.signal);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(directory, rootCaKeyFile), authority.keyPem(), { mode: privateFileMode });
  await writeFileAtomic(join(directory, rootCaCertFile), authority.certPem, { mode: publicFileMode });
  await syncDirectory(directory);
}

/**
 * Loads the CA saved in `directory`; undefined when neither file exists (the node is not a
 * CA holder). Throws FailedPreconditionError when only one exists and InvalidArgumentError
 * when they do not parse or do not match.
 */
export async function loadCertificateAuthority(
  directory: string,
  options: { clock: Clock; randomBytes: (size: number) => Uint8Array; signal?: AbortSignal },
): Promise<CertificateAuthority | undefined> {
  throwIfAborted(options.signal);
  const certPem = await readFileIfPresent(join(directory, rootCaCertFile));
  const keyPem = await readFileIfPresent(join(directory, rootCaKeyFile));
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined) {
    throw new FailedPreconditionError(
      `${directory} holds only one of ${rootCaCertFile} and ${rootCaKeyFile}: restore the missing file from a backup`,
    );
  }
  return certificateAuthorityFromPem({ certPem, keyPem, clock: options.clock, randomBytes: options.randomBytes });
}
