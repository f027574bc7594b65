/** Docker's stream ids in the multiplexed framing. */
export type StreamId = 1 | 2;

/** One frame of Docker's multiplexed stream: [stream, 0, 0, 0, length (u32 BE)] + payload. */
export function multiplexFrame(stream: StreamId, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

export const multiplexedContentType = "application/vnd.docker.multiplexed-stream";
