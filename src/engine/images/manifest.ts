import { InvalidArgumentError, NotImplementedError, ResourceExhaustedError } from "../../common/errors.js";
import { parseDigest, type Descriptor, type Digest, type Platform } from "../content/digest.js";

export const mediaTypes = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

/** Manifests and indexes: the distribution spec's suggested cap. */
export const manifestBytesMax = 4 * 1024 * 1024;
/** Image config JSON (history and env can be long, but not this long). */
export const configBytesMax = 8 * 1024 * 1024;
/** Layers of one image: overlay mount options cannot hold many more. */
export const imageLayersMax = 127;
/** Entries of one index. */
export const indexManifestsMax = 1024;
/** Entries in a config list field (Env, Cmd, ExposedPorts...). */
export const configListItemsMax = 4096;

export interface ImageManifest {
  readonly kind: "manifest";
  readonly mediaType: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface ImageIndex {
  readonly kind: "index";
  readonly mediaType: string;
  readonly manifests: readonly Descriptor[];
}

export interface Healthcheck {
  readonly test: readonly string[];
  /** Nanoseconds, as in the image config; 0 means the default. */
  readonly intervalNs: number;
  readonly timeoutNs: number;
  readonly startPeriodNs: number;
  /** The probe interval during the start period (Docker 25+); 0 means the default. */
  readonly startIntervalNs: number;
  readonly retries: number;
}

/** The runtime part of an image config, with field names the runtime spec builder takes. */
export interface ImageConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: readonly string[];
  readonly workingDir: string;
  readonly user: string;
  readonly stopSignal: string | null;
  /** "80/tcp" style keys. */
  readonly exposedPorts: readonly string[];
  readonly volumes: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly healthcheck: Healthcheck | null;
}

/** The whole image config document, parsed. */
export interface ImageConfigDocument {
  readonly architecture: string;
  readonly os: string;
  readonly variant: string | undefined;
  readonly created: string | null;
  readonly config: ImageConfig;
  readonly diffIds: readonly Digest[];
}

type Fields = Record<string, unknown>;

function asObject(value: unknown, what: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError(`${what} is not a JSON object`);
  return { ...value };
}

function parseJson(bytes: Buffer, what: string, bytesMax: number): Fields {
  if (bytes.length > bytesMax) throw new ResourceExhaustedError(`${what} has ${bytes.length} bytes, over the ${bytesMax}-byte limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new InvalidArgumentError(`${what} is not valid JSON`, { cause: error });
  }
  return asObject(parsed, what);
}

function optionalString(fields: Fields, key: string, what: string): string | undefined {
  const value = fields[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new InvalidArgumentError(`${what}.${key} is not a string`);
  return value;
}

function stringList(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length > configListItemsMax) throw new InvalidArgumentError(`${what} is not a list of at most ${configListItemsMax} strings`);
  return value.map((item, index) => {
    if (typeof item !== "string") throw new InvalidArgumentError(`${what}[${index}] is not a string`);
    return item;
  });
}

/** Docker's map-as-set fields ({"80/tcp": {}}) and label maps. */
function objectKeys(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  const keys = Object.keys(asObject(value, what));
  if (keys.length > configListItemsMax) throw new InvalidArgumentError(`${what} has more than ${configListItemsMax} entries`);
  return keys;
}

function stringMap(value: unknown, what: string): Record<string, string> {
  const result: Record<string, string> = {};
  if (value === undefined || value === null) return result;
  const fields = asObject(value, what);
  for (const key of objectKeys(fields, what)) {
    const item = fields[key];
    if (typeof item !== "string") throw new InvalidArgumentError(`${what}["${key}"] is not a string`);
    result[key] = item;
  }
  return result;
}

function parsePlatform(value: unknown, what: string): Platform | undefined {
  if (value === undefined || value === null) return undefined;
  const fields = asObject(value, what);
  const os = optionalString(fields, "os", what);
  const architecture = optionalString(fields, "architecture", what);
  if (os === undefined || architecture === undefined) throw new InvalidArgumentError(`${what} lacks os or architecture`);
  const variant = optionalString(fields, "variant", what);
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** Parses an OCI descriptor; the digest is validated before anything uses it. */
export function parseDescriptor(value: unknown, what: string): Descriptor {
  const fields = asObject(value, what);
  const mediaType = optionalString(fields, "mediaType", what);
  if (mediaType === undefined) throw new InvalidArgumentError(`${what} has no mediaType`);
  const digest = parseDigest(fields["digest"], `${what}.digest`);
  const size = fields["size"];
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`${what}.size is not a byte count`);
  const platform = parsePlatform(fields["platform"], `${what}.platform`);
  const annotations = fields["annotations"] === undefined ? undefined : stringMap(fields["annotations"], `${what}.annotations`);
  return {
    mediaType,
    digest,
    size,
    ...(platform === undefined ? {} : { platform }),
    ...(annotations === undefined ? {} : { annotations }),
  };
}

function descriptorList(value: unknown, what: string, itemsMax: number): Descriptor[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(`${what} is not a list`);
  if (value.length > itemsMax) throw new ResourceExhaustedError(`${what} has ${value.length} entries, over the limit of ${itemsMax}`);
  return value.map((item, index) => parseDescriptor(item, `${what}[${index}]`));
}

/**
 * Parses a manifest or an index. The document's own mediaType wins over the transport's
 * Content-Type; without either, the shape decides (old OCI documents omit mediaType).
 */
export function parseManifestDocument(bytes: Buffer, contentType?: string): ImageManifest | ImageIndex {
  const fields = parseJson(bytes, "manifest", manifestBytesMax);
  if (fields["schemaVersion"] !== 2) throw new InvalidArgumentError("manifest schemaVersion is not 2 (Docker schema 1 manifests are not supported)");
  const declared = optionalString(fields, "mediaType", "manifest") ?? contentType?.split(";")[0]?.trim();
  const isIndex =
    declared === mediaTypes.ociIndex || declared === mediaTypes.dockerManifestList || (declared !== mediaTypes.ociManifest && declared !== mediaTypes.dockerManifest && "manifests" in fields);
  if (isIndex) {
    return { kind: "index", mediaType: declared ?? mediaTypes.ociIndex, manifests: descriptorList(fields["manifests"], "index.manifests", indexManifestsMax) };
  }
  const mediaType = declared ?? mediaTypes.ociManifest;
  if (mediaType !== mediaTypes.ociManifest && mediaType !== mediaTypes.dockerManifest) {
    throw new InvalidArgumentError(`manifest media type "${mediaType}" is not an image manifest or index`);
  }
  const layers = descriptorList(fields["layers"], "manifest.layers", imageLayersMax);
  return { kind: "manifest", mediaType, config: parseDescriptor(fields["config"], "manifest.config"), layers };
}

/** Fails early, before any download, on layer kinds shoal cannot apply. */
export function checkLayerMediaType(layer: Descriptor): void {
  if (layer.mediaType.endsWith("+zstd") || layer.mediaType.endsWith(".zstd")) {
    throw new NotImplementedError(`layer ${layer.digest} is zstd-compressed (${layer.mediaType}); shoal supports gzip and uncompressed layers only`);
  }
  const known: readonly string[] = [mediaTypes.ociLayer, mediaTypes.ociLayerGzip, mediaTypes.dockerLayerGzip, mediaTypes.dockerForeignLayerGzip];
  if (!known.includes(layer.mediaType) && !layer.mediaType.startsWith("application/vnd.oci.image.layer.nondistributable.v1.tar")) {
    throw new InvalidArgumentError(`layer ${layer.digest} has unsupported media type "${layer.mediaType}"`);
  }
}

function parseHealthcheck(value: unknown): Healthcheck | null {
  if (value === undefined || value === null) return null;
  const fields = asObject(value, "config.Healthcheck");
  const duration = (key: string): number => {
    const item = fields[key];
    if (item === undefined || item === null) return 0;
    if (typeof item !== "number" || !Number.isSafeInteger(item) || item < 0) throw new InvalidArgumentError(`config.Healthcheck.${key} is not a duration`);
    return item;
  };
  return {
    test: stringList(fields["Test"], "config.Healthcheck.Test"),
    intervalNs: duration("Interval"),
    timeoutNs: duration("Timeout"),
    startPeriodNs: duration("StartPeriod"),
    startIntervalNs: duration("StartInterval"),
    retries: duration("Retries"),
  };
}

function parseRuntimeConfig(value: unknown): ImageConfig {
  const fields = value === undefined || value === null ? {} : asObject(value, "config.config");
  return {
    entrypoint: stringList(fields["Entrypoint"], "config.Entrypoint"),
    cmd: stringList(fields["Cmd"], "config.Cmd"),
    env: stringList(fields["Env"], "config.Env"),
    workingDir: optionalString(fields, "WorkingDir", "config") ?? "",
    user: optionalString(fields, "User", "config") ?? "",
    stopSignal: optionalString(fields, "StopSignal", "config") ?? null,
    exposedPorts: objectKeys(fields["ExposedPorts"], "config.ExposedPorts"),
    volumes: objectKeys(fields["Volumes"], "config.Volumes"),
    labels: stringMap(fields["Labels"], "config.Labels"),
    healthcheck: parseHealthcheck(fields["Healthcheck"]),
  };
}

/** Parses an image config (OCI or Docker; they share this shape). */
export function parseImageConfigDocument(bytes: Buffer): ImageConfigDocument {
  const fields = parseJson(bytes, "image config", configBytesMax);
  const rootfs = asObject(fields["rootfs"], "image config rootfs");
  if (rootfs["type"] !== "layers") throw new InvalidArgumentError('image config rootfs.type is not "layers"');
  const diffIdTexts = stringList(rootfs["diff_ids"], "image config rootfs.diff_ids");
  if (diffIdTexts.length > imageLayersMax) throw new ResourceExhaustedError(`image has ${diffIdTexts.length} layers, over the limit of ${imageLayersMax}`);
  return {
    architecture: optionalString(fields, "architecture", "image config") ?? "",
    os: optionalString(fields, "os", "image config") ?? "",
    variant: optionalString(fields, "variant", "image config"),
    created: optionalString(fields, "created", "image config") ?? null,
    config: parseRuntimeConfig(fields["config"]),
    diffIds: diffIdTexts.map((text, index) => parseDigest(text, `image config rootfs.diff_ids[${index}]`)),
  };
}

/** The manifest for `platform` in an index, or undefined when the index has none. */
export function selectPlatform(index: ImageIndex, platform: Platform): Descriptor | undefined {
  const candidates = index.manifests.filter(
    (entry) =>
      entry.platform !== undefined &&
      entry.platform.os === platform.os &&
      entry.platform.architecture === platform.architecture &&
      (platform.variant === undefined || entry.platform.variant === platform.variant) &&
      (entry.mediaType === mediaTypes.ociManifest || entry.mediaType === mediaTypes.dockerManifest),
  );
  return candidates[0];
}

export function formatPlatform(platform: Platform): string {
  return platform.variant === undefined ? `${platform.os}/${platform.architecture}` : `${platform.os}/${platform.architecture}/${platform.variant}`;
}

/** Parses "os/arch[/variant]" as given to --platform. */
export function parsePlatformOption(text: string): Platform {
  const parts = text.split("/");
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || os === undefined || os === "" || architecture === undefined || architecture === "" || variant === "") {
    throw new InvalidArgumentError(`platform "${text}" must be os/architecture[/variant], e.g. linux/amd64`);
  }
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}
