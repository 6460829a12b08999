/**
 * A response body decoded by its `Content-Encoding`. The undici client hands a body over as it
 * was sent (unlike `fetch`), and a proxy may compress an answer although the request asked for
 * `identity`. The codings Node's zlib reads are decoded, last applied first; any other is refused.
 *
 * @internal
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Data from "effect/Data"
import * as Predicate from "effect/Predicate"
import * as Stream from "effect/Stream"
import type { Duplex } from "node:stream"
import * as Zlib from "node:zlib"

/** A coding this module cannot decode; `encoding` is the whole header, as the server sent it. */
export class UnsupportedEncoding extends Data.TaggedError("UnsupportedEncoding")<{ readonly encoding: string }> {}

/**
 * The body is not valid in its coding: `truncated` when it ended early (a cut connection),
 * else its bytes are wrong. `reason` is zlib's word for it.
 */
export class EncodingError extends Data.TaggedError("EncodingError")<{
  readonly coding: string
  readonly truncated: boolean
  readonly reason: string
}> {}

// A Map, not a record: a header's "constructor" must not find Object's own.
const decoders: ReadonlyMap<string, () => Duplex> = new Map([
  ["gzip", () => Zlib.createGunzip()],
  // RFC 9110 §8.4.1.3: a recipient reads "x-gzip" as "gzip".
  ["x-gzip", () => Zlib.createGunzip()],
  ["deflate", () => Zlib.createInflate()],
  ["br", () => Zlib.createBrotliDecompress()]
])

const encodingError = (coding: string) => (cause: unknown): EncodingError => {
  const code = Predicate.hasProperty(cause, "code") ? cause.code : undefined
  const reason = cause instanceof Error ? cause.message : String(cause)
  // zlib says "unexpected end of file" (Z_BUF_ERROR) when the input ends inside the stream.
  return new EncodingError({ coding, truncated: code === "Z_BUF_ERROR", reason })
}

/**
 * `body` decoded by the codings of `contentEncoding` (`undefined`, empty or `identity`: as it
 * is). A coding other than gzip, deflate and br fails with `UnsupportedEncoding` before any byte
 * is read; bytes that are not valid in their coding fail with `EncodingError`.
 */
export const decodeBody = <E, R>(
  body: Stream.Stream<Uint8Array, E, R>,
  contentEncoding: string | undefined
): Stream.Stream<Uint8Array, E | UnsupportedEncoding | EncodingError, R> => {
  const steps: Array<{ readonly coding: string; readonly decoder: () => Duplex }> = []
  for (const coding of (contentEncoding ?? "").split(",").map((coding) => coding.trim().toLowerCase())) {
    if (coding === "" || coding === "identity") continue
    const decoder = decoders.get(coding)
    if (decoder === undefined) return Stream.fail(new UnsupportedEncoding({ encoding: contentEncoding ?? "" }))
    steps.push({ coding, decoder })
  }
  // Codings are listed in the order they were applied: undo the last one first.
  return steps.reduceRight<Stream.Stream<Uint8Array, E | UnsupportedEncoding | EncodingError, R>>(
    (decoded, { coding, decoder }) => NodeStream.pipeThroughDuplex(decoded, decoder, encodingError(coding)),
    body
  )
}
