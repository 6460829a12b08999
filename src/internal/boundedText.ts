/**
 * A response body read as text, at most `limit` bytes of it: a body that says (content-length)
 * or turns out to be longer fails with `BodyTooLarge` as soon as that is known, and the stream
 * is closed then (an HTTP body stops downloading), rather than growing a string until the
 * process runs out of memory.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

/** The body is longer than `limit` bytes; `declared` is its content-length when that said so. */
export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{
  readonly limit: number
  readonly declared: number | undefined
}> {}

/** The text of `body` (UTF-8), failing with `BodyTooLarge` past `limit` bytes. */
export const boundedText = <E, R>(
  body: Stream.Stream<Uint8Array, E, R>,
  limit: number,
  contentLength?: string | undefined
): Effect.Effect<string, E | BodyTooLarge, R> => {
  const declared = contentLength === undefined || !/^\s*\d+\s*$/.test(contentLength) ? undefined : Number(contentLength)
  if (declared !== undefined && declared > limit) return Effect.fail(new BodyTooLarge({ limit, declared }))
  return Effect.suspend(() => {
    const decoder = new TextDecoder()
    const parts: Array<string> = []
    let bytes = 0
    return Stream.runForEach(body, (chunk) => {
      bytes += chunk.byteLength
      if (bytes > limit) return Effect.fail(new BodyTooLarge({ limit, declared }))
      parts.push(decoder.decode(chunk, { stream: true }))
      return Effect.void
    }).pipe(Effect.map(() => {
      parts.push(decoder.decode())
      return parts.join("")
    }))
  })
}
