import { createReadStream, createWriteStream } from "node:fs";
import type { IncomingMessage } from "node:http";
import { pipeline } from "node:stream/promises";
import { Readable, type Writable } from "node:stream";

import type { Command } from "commander";

import { DaemonResponseError, readAll } from "../client.js";
import { buildDemoArchive } from "../../engine/images/demo.js";
import type { CliContext } from "../context.js";
import { formatBytes, formatTable, parseOutputFormat, writeJson } from "../output.js";
import { asArray, asRecord, numberField, stringField, type JsonRecord } from "../parse.js";
import { ProgressDisplay, readJsonMessages } from "../stream.js";

/** Splits "repo:tag" (not the ":port" of a registry host) for /images/create. */
function splitTag(reference: string): { image: string; tag: string | undefined } {
  if (reference.includes("@")) return { image: reference, tag: undefined };
  const slash = reference.lastIndexOf("/");
  const colon = reference.lastIndexOf(":");
  return colon > slash ? { image: reference.slice(0, colon), tag: reference.slice(colon + 1) } : { image: reference, tag: undefined };
}

async function streamJsonMessages(response: { status: number; body: IncomingMessage }, out: Writable, quiet: boolean): Promise<void> {
  if (response.status >= 400) {
    const text = await readAll(response.body);
    let message = text;
    try {
      message = stringField(asRecord(JSON.parse(text), "error"), "message", text);
    } catch {
      // not JSON: show the text as it came
    }
    throw new DaemonResponseError(response.status, message);
  }
  const display = new ProgressDisplay(out);
  await readJsonMessages(response.body, (message) => {
    if (!quiet) display.update(message);
  });
}

/** Pulls an image with a docker-pull-like progress display on `out`. */
export async function pullImage(context: CliContext, reference: string, options: { quiet: boolean; out: Writable; platform?: string }): Promise<void> {
  const { image, tag } = splitTag(reference);
  const response = await context.client().stream("POST", "/images/create", { query: { fromImage: image, tag, platform: options.platform } });
  await streamJsonMessages(response, options.out, options.quiet);
  if (options.quiet) options.out.write(`${reference}\n`);
}

function imageRow(image: JsonRecord): string[][] {
  const tags = asArray(image.RepoTags ?? [], "RepoTags").map(String);
  const id = stringField(image, "Id").replace(/^sha256:/, "").slice(0, 12);
  const created = new Date(numberField(image, "Created") * 1000).toISOString().replace("T", " ").slice(0, 19);
  const size = formatBytes(numberField(image, "Size"));
  if (tags.length === 0) return [["<none>", "<none>", id, created, size]];
  return tags.map((reference) => {
    const { image: repository, tag } = splitTag(reference);
    return [repository, tag ?? "<none>", id, created, size];
  });
}

export function registerImageCommands(program: Command, context: CliContext): void {
  const image = program.command("image").description("Manage images on this node");
  image.command("pull").description("Pull an image from a registry").argument("<image>")
    .option("-q, --quiet", "print only the image name")
    .option("--platform <os/arch>", "platform to pull (default linux/amd64)")
    .action((reference: string, options: { quiet?: boolean; platform?: string }) =>
      pullImage(context, reference, { quiet: options.quiet === true, out: context.out, ...(options.platform === undefined ? {} : { platform: options.platform }) }));
  image.command("push").description("Push an image to its registry").argument("<image>")
    .option("-q, --quiet", "print nothing but errors")
    .action(async (reference: string, options: { quiet?: boolean }) => {
      const { image: name, tag } = splitTag(reference);
      const response = await context.client().stream("POST", `/images/${encodeURIComponent(name)}/push`, { query: { tag } });
      await streamJsonMessages(response, context.out, options.quiet === true);
    });
  image.command("load").description("Load images from a docker-save or OCI-layout tar archive").option("-i, --input <file>", "archive to read (default stdin)")
    .option("-q, --quiet", "print nothing but errors")
    .action(async (options: { input?: string; quiet?: boolean }) => {
      const stream = options.input === undefined ? process.stdin : createReadStream(options.input);
      const response = await context.client().stream("POST", "/images/load", { query: { quiet: options.quiet === true ? 1 : undefined }, upload: { stream, contentType: "application/x-tar" } });
      await streamJsonMessages(response, context.out, options.quiet === true);
    });
  // Like `docker build`, the archive is made on the client and sent to the daemon: a pure
  // OCI image-layout tar of the host's static busybox, loaded through /images/load.
  image.command("build-demo").description("Build the demo images shoal-demo/busybox and shoal-demo/layered from the host's static busybox")
    .option("--busybox <path>", "static busybox binary", "/bin/busybox")
    .action(async (options: { busybox: string }) => {
      const archive = await buildDemoArchive({ busyboxPath: options.busybox });
      const response = await context.client().stream("POST", "/images/load", { upload: { stream: Readable.from([archive]), contentType: "application/x-tar" } });
      await streamJsonMessages(response, context.out, false);
    });
  image.command("save").description("Write images to a tar archive (docker-save layout with an OCI index)").argument("<images...>")
    .option("-o, --output <file>", "file to write (default stdout)")
    .action(async (names: string[], options: { output?: string }) => {
      const query = new URLSearchParams(names.map((name): [string, string] => ["names", name]));
      const response = await context.client().stream("GET", `/images/get?${query.toString()}`);
      if (response.status >= 400) await streamJsonMessages(response, context.err, true);
      await pipeline(response.body, options.output === undefined ? context.out : createWriteStream(options.output));
    });
  image.command("ls").description("List images").option("-q, --quiet", "only ids").option("-f, --format <format>", "table or json", "table")
    .action(async (options: { quiet?: boolean; format: string }) => {
      const list = asArray(await context.client().json("GET", "/images/json"), "image list").map((item) => asRecord(item, "image"));
      if (parseOutputFormat(options.format) === "json") writeJson(context.out, list);
      else if (options.quiet === true) context.out.write(list.map((item) => `${stringField(item, "Id").replace(/^sha256:/, "").slice(0, 12)}\n`).join(""));
      else context.out.write(formatTable(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], list.flatMap(imageRow)));
    });
  image.command("rm").description("Remove images (refused while a container uses one, unless forced)").argument("<images...>").option("-f, --force", "remove even if in use")
    .action(async (names: string[], options: { force?: boolean }) => {
      for (const name of names) {
        const answer = asArray(await context.client().json("DELETE", `/images/${encodeURIComponent(name)}`, { query: { force: options.force === true ? 1 : undefined } }), "remove answer");
        for (const item of answer) {
          const record = asRecord(item, "remove item");
          const untagged = stringField(record, "Untagged");
          context.out.write(untagged !== "" ? `Untagged: ${untagged}\n` : `Deleted: ${stringField(record, "Deleted")}\n`);
        }
      }
    });
  image.command("tag").description("Give an image another name").argument("<source>").argument("<target>")
    .action(async (source: string, target: string) => {
      const { image: repo, tag } = splitTag(target);
      await context.client().json("POST", `/images/${encodeURIComponent(source)}/tag`, { query: { repo, tag } });
    });
  image.command("inspect").description("Show images' details as JSON").argument("<images...>")
    .action(async (names: string[]) => {
      const details = [];
      for (const name of names) details.push(await context.client().json("GET", `/images/${encodeURIComponent(name)}/json`));
      writeJson(context.out, details);
    });
}
