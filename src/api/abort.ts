import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * A signal that fires when the client goes away before its response is done, so pulls,
 * log streams and waits stop with it. The socket listener is removed when the response
 * ends: keep-alive sockets carry many requests.
 */
export function abortOnDisconnect(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const socket = request.raw.socket;
  const onClose = (): void => controller.abort(new Error("client went away"));
  socket.once("close", onClose);
  reply.raw.once("close", () => socket.off("close", onClose));
  return controller.signal;
}
