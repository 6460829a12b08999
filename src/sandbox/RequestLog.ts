/**
 * The sandbox's record of the requests it saw, as a ring: at most `maxEntries` requests and
 * `maxBodyBytes` of kept bodies, the oldest dropped first, so a sandbox that serves for hours
 * (or is flooded) holds a bounded amount of memory. Bodies are kept as the text that arrived and
 * parsed only when read.
 *
 * @since 0.1.0
 */
import type { FaultKind, RouteName } from "./FaultPlan.js"

/** What the client got: an HTTP status (a mid-stream fault records its 200), or no answer at all. */
export type Outcome = number | "hang" | "reset" | "malformed"

/** One request as the sandbox saw it. Key headers and the `key` query parameter read "<redacted>". */
export interface RecordedRequest {
  /** 1-based arrival number across all routes. */
  readonly sequence: number
  /** The fault-plan route that served it, or "other" (count tokens, recent events, health, 404s…). */
  readonly route: RouteName | "other"
  readonly method: string
  /** Path without the query string. */
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  /** Clock time at arrival, in milliseconds. */
  readonly time: number
  /** Lower-case names; `x-goog-api-key`, `x-api-key`, `authorization` (and cookies) redacted. */
  readonly headers: Readonly<Record<string, string>>
  /**
   * Parsed JSON body, or the raw text when it is not JSON, or `undefined` when empty (or not
   * kept: over the route's size limit, or larger than the log's byte budget).
   */
  readonly body: unknown
  /** The body's size in bytes as it arrived (for a refused body, as far as it was seen). */
  readonly bodyBytes: number
  /** The fault the plan injected ("none" for a plain normal answer). */
  readonly fault: FaultKind
  readonly outcome: Outcome
}


/** One request as kept; `text` is its body, or `undefined` when it was too large to keep. */
export interface LogEntry<A> {
  readonly value: A
  readonly text: string | undefined
}

/** Default bounds: 10,000 requests, 64 MiB of bodies. */
export const defaultMaxEntries = 10_000
export const defaultMaxBodyBytes = 64 * 1024 * 1024

export class RequestLog<A> {
  private readonly ring: Array<LogEntry<A> | undefined>
  private head = 0
  private size = 0
  private bytes = 0
  /** Requests dropped from the log to stay within its bounds, since the last `clear`. */
  dropped = 0

  constructor(readonly maxEntries: number, readonly maxBodyBytes: number) {
    this.ring = new Array<LogEntry<A> | undefined>(Math.max(1, maxEntries))
  }

  /** Appends a request; a body larger than the whole byte budget is not kept (the entry is). */
  push(value: A, text: string): void {
    const kept = text.length > this.maxBodyBytes ? undefined : text
    const cost = kept?.length ?? 0
    while (this.size > 0 && (this.size >= this.ring.length || this.bytes + cost > this.maxBodyBytes)) this.dropOldest()
    this.ring[(this.head + this.size) % this.ring.length] = { value, text: kept }
    this.size++
    this.bytes += cost
  }

  private dropOldest(): void {
    const oldest = this.ring[this.head]
    this.ring[this.head] = undefined
    this.head = (this.head + 1) % this.ring.length
    this.size--
    this.bytes -= oldest?.text?.length ?? 0
    this.dropped++
  }

  /** The kept requests, oldest first. */
  entries(): ReadonlyArray<LogEntry<A>> {
    const out: Array<LogEntry<A>> = []
    for (let i = 0; i < this.size; i++) {
      const entry = this.ring[(this.head + i) % this.ring.length]
      if (entry !== undefined) out.push(entry)
    }
    return out
  }

  clear(): void {
    this.ring.fill(undefined)
    this.head = 0
    this.size = 0
    this.bytes = 0
    this.dropped = 0
  }
}
