/**
 * Server-sent events from a stream of text: each complete event (ended by a blank line, any of
 * the three line endings) becomes one `Event`; `retry:` fields and comments are dropped, an
 * event left incomplete when the text ends is discarded, as the SSE specification says.
 *
 * @internal
 */
import * as Sse from "@effect/experimental/Sse"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

export type Event = Sse.Event
export type SseError = Sse.SseError

/** The events of `text`; a pending event larger than `maxEventSize` (default 10 MiB) fails with `SseError`. */
export const events = <E, R>(
  text: Stream.Stream<string, E, R>,
  options?: Sse.DecodeOptions
): Stream.Stream<Event, E | SseError, R> =>
  Stream.suspend(() => {
    // One parser per run of the stream: it keeps the partial event between chunks.
    let parsed: Array<Event> = []
    const parser = Sse.makeParser((event) => {
      if (event._tag === "Event") parsed.push(event)
    }, options)
    return Stream.mapChunksEffect(text, (chunk) => {
      for (const piece of chunk) {
        const error = parser.feed(piece)
        if (error !== undefined) return Effect.fail(error)
      }
      const out = Chunk.unsafeFromArray(parsed)
      parsed = []
      return Effect.succeed(out)
    })
  })
