import { InvalidArgumentError } from "../../common/errors.js";
import { parseDigest, type Digest } from "../content/digest.js";

export const dockerHubRegistry = "docker.io";
/** Where Docker Hub's distribution API actually lives. */
export const dockerHubApiHost = "registry-1.docker.io";
export const referenceBytesMax = 255 + 128 + 72;

const componentPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/u;
const tagPattern = /^[\w][\w.-]{0,127}$/u;
const hostPattern = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/u;

/** A fully qualified image reference: registry host, repository path, tag and/or digest. */
export interface ImageReference {
  /** Host as written, with port: "docker.io", "127.0.0.1:5000". */
  readonly registry: string;
  /** Repository path: "library/busybox", "team/app". */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;
}

/**
 * Parses an image reference the way docker does: a first component with a "." or ":" or equal
 * to "localhost" is a registry host, otherwise the registry is docker.io; single-name Docker
 * Hub repositories live under "library/"; no tag and no digest means ":latest".
 */
export function parseReference(text: string): ImageReference {
  if (text === "" || Buffer.byteLength(text) > referenceBytesMax) {
    throw new InvalidArgumentError(`image reference must be 1 to ${referenceBytesMax} bytes`);
  }
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = parseDigest(rest.slice(at + 1), `image reference "${text}": digest`);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) {
      throw new InvalidArgumentError(`image reference "${text}": tag "${tag}" must be 1-128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
    }
  }
  const parts = rest.split("/");
  const first = parts[0] ?? "";
  let registry = dockerHubRegistry;
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
    if (!hostPattern.test(registry)) throw new InvalidArgumentError(`image reference "${text}": "${registry}" is not a valid registry host`);
  }
  if (registry === "index.docker.io") registry = dockerHubRegistry;
  if (registry === dockerHubRegistry && parts.length === 1) parts.unshift("library");
  for (const part of parts) {
    if (!componentPattern.test(part)) {
      throw new InvalidArgumentError(
        `image reference "${text}": repository component "${part}" must be lowercase letters and digits separated by ".", "_", "__" or "-"`,
      );
    }
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository: parts.join("/"), tag, digest };
}

/** The canonical full name: "docker.io/library/busybox:latest", "host:5000/a/b@sha256:...". */
export function formatReference(reference: ImageReference): string {
  const tag = reference.tag === undefined ? "" : `:${reference.tag}`;
  const digest = reference.digest === undefined ? "" : `@${reference.digest}`;
  return `${reference.registry}/${reference.repository}${tag}${digest}`;
}

/** "registry/repository" without tag or digest. */
export function referenceName(reference: ImageReference): string {
  return `${reference.registry}/${reference.repository}`;
}

/** The short form docker prints: Docker Hub official images lose "docker.io/library/". */
export function familiarReference(reference: ImageReference): string {
  const full = formatReference(reference);
  if (reference.registry !== dockerHubRegistry) return full;
  const withoutHost = full.slice(`${dockerHubRegistry}/`.length);
  return withoutHost.startsWith("library/") ? withoutHost.slice("library/".length) : withoutHost;
}
