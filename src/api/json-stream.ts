import { PassThrough } from "node:stream";

import type { FastifyReply } from "fastify";

import { errorMessage, isShoalError } from "../common/errors.js";

/** A Docker JSON-lines message (pull, push and load progress). */
export interface JsonStreamMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  stream?: string;
  aux?: Record<string, unknown>;
}

/**
 * Runs a long operation whose progress the client reads as Docker's JSON lines. Until the
 * first message the operation may still fail with a plain HTTP error (so `docker pull nope`
 * gets a 404); after it, failures travel in-stream as `{"errorDetail":{...},"error":...}`.
 */
export async function replyWithJsonStream(reply: FastifyReply, run: (send: (message: JsonStreamMessage) => void) => Promise<void>): Promise<void> {
  let stream: PassThrough | undefined;
  const send = (message: JsonStreamMessage): void => {
    if (stream === undefined) {
      stream = new PassThrough();
      void reply.code(200).type("application/json").send(stream);
    }
    stream.write(`${JSON.stringify(message)}\n`);
  };
  try {
    await run(send);
  } catch (error) {
    if (stream === undefined) throw error;
    const message = isShoalError(error) ? error.message : `internal error: ${errorMessage(error)}`;
    stream.end(`${JSON.stringify({ errorDetail: { message }, error: message })}\n`);
    return;
  }
  if (stream === undefined) send({ status: "" });
  stream?.end();
}
