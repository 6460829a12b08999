/**
 * Server-sent events from a stream of text: each complete event (ended by a blank line, any of
 * the three line endings) becomes one `Event`; `retry:` fields and comments are dropped.
 *
 * A text that ends in the middle of an event (anything after the last blank line) fails with
 * `SseTruncated`: the SSE specification discards such an event, but for an API answer it means
 * the connection was cut, and a caller must not take the chunks before it for the whole answer
 * (Google's `@google/genai` throws "Incomplete JSON segment at the end" there too).
 *
 * @internal
 */
import * as Sse from "@effect/experimental/Sse"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

export type Event = Sse.Event
export type SseError = Sse.SseError

/** The text ended after `pending` characters of an event that no blank line closed. */
export class SseTruncated extends Data.TaggedError("SseTruncated")<{ readonly pending: number }> {
  override get message() {
    return `the event stream ended in the middle of an event (${this.pending} characters after the last complete one)`
  }
}

/** Two line ends in a row (CRLF, LF or CR; a CR never split from its LF): a blank line. */
const blankLine = /(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))/g

/** Where the last blank line (an event's end) ends in `text`, or -1. */
const afterLastBoundary = (text: string): number => {
  let end = -1
  for (const match of text.matchAll(blankLine)) end = match.index + match[0].length
  return end
}

/**
 * The events of `text`; a pending event larger than `maxEventSize` (default 10 MiB) fails with
 * `SseError`, a text that ends inside an event with `SseTruncated`.
 */
export const events = <E, R>(
  text: Stream.Stream<string, E, R>,
  options?: Sse.DecodeOptions
): Stream.Stream<Event, E | SseError | SseTruncated, R> =>
  Stream.suspend(() => {
    // One parser per run of the stream: it keeps the partial event between chunks.
    let parsed: Array<Event> = []
    const parser = Sse.makeParser((event) => {
      if (event._tag === "Event") parsed.push(event)
    }, options)
    // The text after the last blank line seen, kept only as far as needed: the last 3
    // characters (a boundary may span two chunks) and how much of it is not whitespace.
    let tail = ""
    let pending = 0
    const track = (piece: string): void => {
      const text = tail + piece
      const end = afterLastBoundary(text)
      const rest = end === -1 ? piece : text.slice(end)
      pending = (end === -1 ? pending : 0) + rest.trim().length
      tail = text.slice(-3)
    }
    return Stream.mapChunksEffect(text, (chunk) => {
      for (const piece of chunk) {
        const error = parser.feed(piece)
        if (error !== undefined) return Effect.fail(error)
        track(piece)
      }
      const out = Chunk.unsafeFromArray(parsed)
      parsed = []
      return Effect.succeed(out)
    }).pipe(
      Stream.concat(Stream.suspend(() => pending > 0 ? Stream.fail(new SseTruncated({ pending })) : Stream.empty))
    )
  })
