/**
 * Emulator of the multi-agent observability server (a Bun server; `POST /events`,
 * `GET /events/recent`, `GET /events/filter-options`, the `GET /stream` WebSocket, and
 * `200 "Multi-Agent Observability Server"` for everything else, its HITL and theme routes too),
 * plus the extended API big3 adds on top: idempotent `POST /events`, `POST /events/batch` and
 * `GET /health`.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { retryAfterSeconds } from "./FaultPlan.js"
import type { Answer, Incoming, Upstream } from "./Http.js"
import { decode, parseJson, tooDeep } from "./Http.js"

/**
 * `"extended"`: big3's server (idempotent events, batches, health).
 * `"public"`: exactly the public server: no idempotency, no batch, no health.
 */
export type EventsMode = "extended" | "public"

/** An event the sandbox accepted, as stored. */
export interface StoredEvent {
  /** Server-assigned, 1-based, like the public server's row id. */
  readonly id: number
  /** The client's string `id` field (the idempotency key), when it sent one. */
  readonly clientId: string | undefined
  readonly source_app: string
  readonly session_id: string
  readonly hook_event_type: string
  readonly payload: unknown
  /**
   * The event's `timestamp` (ms) as the public server's INTEGER column keeps it (see
   * {@link columnTimestamp}), or the arrival time when it had none or it is kept as text.
   */
  readonly timestamp: number
  readonly summary?: string | undefined
  readonly chat?: unknown
  readonly model_name?: string | undefined
  /** Clock time (ms) at which the sandbox stored it. */
  readonly receivedAt: number
}

const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** The public server's check is JavaScript truthiness (`!event.source_app || …`). */
const Required = Schema.Unknown.pipe(Schema.filter((value) => Boolean(value)))

const HookEvent = Schema.Struct({
  source_app: Required,
  session_id: Required,
  hook_event_type: Required,
  payload: Required
}, Rest)
type HookEvent = typeof HookEvent.Type

const Batch = Schema.Array(Schema.Unknown)

/**
 * The fields the public server binds to SQLite parameters as they came (`summary`, `model_name`
 * and `timestamp` when truthy). bun:sqlite throws on an object or array, and the catch answers
 * 400 "Invalid request" without storing the event.
 */
const boundFields = ["source_app", "session_id", "hook_event_type", "summary", "model_name", "timestamp"] as const

/** The first field of `event` that SQLite cannot bind, or `undefined`. */
const unbindable = (event: HookEvent): string | undefined =>
  boundFields.find((field) => typeof event[field] === "object" && event[field] !== null)

/** What the public server's TEXT column keeps: bun:sqlite binds a boolean as the integer 1 or 0. */
const text = (value: unknown): string =>
  typeof value === "string" ? value : typeof value === "boolean" ? (value ? "1" : "0") : JSON.stringify(value)
const optionalText = (value: unknown): string | undefined => value ? text(value) : undefined

interface Entry {
  readonly event: StoredEvent
  /** The answer to the POST that stored it: the body with the numeric `id` and `timestamp`. */
  readonly saved: Readonly<Record<string, unknown>>
  /** The timestamp as the public server's column holds it (what `GET /events/recent` answers). */
  readonly column: number | string
}

/** SQLite's well-formed integer or real literal, which a column of INTEGER affinity turns into a number. */
const numericText = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/

/**
 * What the public server's `timestamp INTEGER` column keeps of a (truthy) timestamp: a number as
 * it is, `true` as 1 (bun:sqlite binds booleans as integers), a numeric string as its number, and
 * any other string as text.
 */
const columnTimestamp = (value: unknown, now: number): number | string => {
  if (typeof value === "number") return value
  if (value === true) return 1
  if (typeof value === "string") return numericText.test(value) ? Number(value) : value
  return now
}

/** SQLite's order of the column: numbers by value, then text (binary collation). */
const compareColumns = (a: number | string, b: number | string): number => {
  if (typeof a === "number" && typeof b === "number") return a - b
  if (typeof a === "number") return -1
  if (typeof b === "number") return 1
  return a < b ? -1 : a > b ? 1 : 0
}

/** The default bound of the event store: the newest 100,000 events (≈ 80 MB of typical hook events). */
export const defaultMaxEvents = 100_000

/** A client `id` among the stored events: the first stored event with it, and how many carry it. */
interface Known {
  readonly entry: Entry
  copies: number
}

/**
 * In-memory store of accepted events, bounded to the newest `maxEvents` (the oldest dropped
 * first and counted as `evicted`); survives sandbox restarts, cleared by `reset`. Dedupe covers
 * the stored events only: an evicted event's client `id` is forgotten with it.
 */
export class EventStore {
  // Oldest first from `head`; the slots before it are dropped events, cut off now and then.
  private entries: Array<Entry | undefined> = []
  private head = 0
  private byClientId = new Map<string, Known>()
  private lastId = 0
  private duplicates = 0
  private evicted = 0

  constructor(readonly maxEvents: number = defaultMaxEvents) {}

  /**
   * Stores an event. With `dedupe`, an event whose client `id` is already stored is not stored
   * again and the stored one is returned; either way a repeated id counts as a duplicate.
   */
  insert(body: HookEvent, now: number, dedupe: boolean): { readonly entry: Entry; readonly duplicate: boolean } {
    const clientId = typeof body["id"] === "string" ? body["id"] : undefined
    const known = clientId === undefined ? undefined : this.byClientId.get(clientId)
    if (known !== undefined) {
      this.duplicates++
      if (dedupe) return { entry: known.entry, duplicate: true }
    }
    // Like the public server's row id: never reused, so evictions leave no two events one id.
    const id = ++this.lastId
    // The public server's `event.timestamp || Date.now()`: answered as sent, stored as its column keeps it.
    const given: unknown = body["timestamp"]
    const stamped = given || now
    const column = columnTimestamp(stamped, now)
    const timestamp = typeof column === "number" ? column : now
    const humanInTheLoopStatus = body["humanInTheLoopStatus"] ??
      (body["humanInTheLoop"] ? { status: "pending" } : undefined)
    const summary = optionalText(body["summary"])
    const model_name = optionalText(body["model_name"])
    const event: StoredEvent = {
      id,
      clientId,
      source_app: text(body.source_app),
      session_id: text(body.session_id),
      hook_event_type: text(body.hook_event_type),
      payload: body.payload,
      timestamp,
      ...(summary === undefined ? {} : { summary }),
      ...(body["chat"] ? { chat: body["chat"] } : {}),
      ...(model_name === undefined ? {} : { model_name }),
      receivedAt: now
    }
    const saved = { ...body, id, timestamp: stamped, ...(humanInTheLoopStatus === undefined ? {} : { humanInTheLoopStatus }) }
    const entry: Entry = { event, saved, column }
    this.entries.push(entry)
    if (clientId !== undefined) {
      if (known === undefined) this.byClientId.set(clientId, { entry, copies: 1 })
      else known.copies++
    }
    while (this.entries.length - this.head > this.maxEvents) this.dropOldest()
    return { entry, duplicate: known !== undefined }
  }

  private dropOldest(): void {
    const oldest = this.entries[this.head]
    this.entries[this.head] = undefined
    this.head++
    this.evicted++
    const clientId = oldest?.event.clientId
    const known = clientId === undefined ? undefined : this.byClientId.get(clientId)
    if (clientId !== undefined && known !== undefined && --known.copies === 0) this.byClientId.delete(clientId)
    // Cutting off the dropped slots costs a copy of the kept ones: amortized O(1) when done
    // only once they are at least half of the array.
    if (this.head >= 1024 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
  }

  /** The stored entries, oldest first. */
  private kept(): Array<Entry> {
    const out: Array<Entry> = []
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]
      if (entry !== undefined) out.push(entry)
    }
    return out
  }

  /** The public server's `getRecentEvents(limit)`: the latest `limit` by timestamp, oldest first. */
  recent(limit: number): ReadonlyArray<Record<string, unknown>> {
    const latest = this.kept().sort((a, b) => compareColumns(b.column, a.column) || b.event.id - a.event.id)
    return (limit < 0 ? latest : latest.slice(0, limit)).reverse().map(({ column, event, saved }) => ({
      id: event.id,
      source_app: event.source_app,
      session_id: event.session_id,
      hook_event_type: event.hook_event_type,
      payload: event.payload,
      chat: event.chat,
      summary: event.summary,
      timestamp: column,
      humanInTheLoop: saved["humanInTheLoop"] || undefined,
      humanInTheLoopStatus: saved["humanInTheLoopStatus"],
      model_name: event.model_name
    }))
  }

  /** The public server's `getFilterOptions()`. */
  filterOptions(): { source_apps: Array<string>; session_ids: Array<string>; hook_event_types: Array<string> } {
    const distinct = (pick: (event: StoredEvent) => string) => [...new Set(this.kept().map(({ event }) => pick(event)))]
    return {
      source_apps: distinct((event) => event.source_app).sort(),
      session_ids: distinct((event) => event.session_id).sort().reverse().slice(0, 300),
      hook_event_types: distinct((event) => event.hook_event_type).sort()
    }
  }

  /** The stored events, oldest first. */
  events(): ReadonlyArray<StoredEvent> {
    return this.kept().map(({ event }) => event)
  }

  stats(): { stored: number; distinctIds: number; duplicates: number; evicted: number } {
    return {
      stored: this.entries.length - this.head,
      distinctIds: this.byClientId.size,
      duplicates: this.duplicates,
      evicted: this.evicted
    }
  }

  clear(): void {
    this.entries = []
    this.head = 0
    this.byClientId = new Map()
    this.lastId = 0
    this.duplicates = 0
    this.evicted = 0
  }
}

const cors = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
  "access-control-allow-headers": "Content-Type"
}

const json = (body: unknown, status = 200, headers: Readonly<Record<string, string>> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { ...cors, ...headers } })

const bannerText = () => HttpServerResponse.text("Multi-Agent Observability Server", { headers: cors })

/** The public server's answer to every route it does not know, whatever the method. */
export const banner: Answer = () => Effect.succeed(bannerText())

/**
 * What the public server (on Bun) holds for one `GET /stream` client that does not read before
 * it drops messages to it: Bun's default WebSocket backpressure limit, 16 MiB.
 */
export const defaultStreamBufferBytes = 16 * 1024 * 1024

/** The sockets open on `GET /stream`, each with the messages waiting to be written to it. */
export class StreamClients {
  private readonly outboxes = new Set<Queue.Queue<string>>()

  /** `bufferBytes`: what one client may have waiting in its socket before messages to it are dropped. */
  constructor(readonly bufferBytes: number = defaultStreamBufferBytes) {}

  /** Queues `message` for every open socket. */
  broadcast(message: string): void {
    for (const outbox of this.outboxes) Queue.unsafeOffer(outbox, message)
  }

  /** Queues `first` for `outbox` and registers it, in one step, so no event falls between. */
  add(outbox: Queue.Queue<string>, first: string): void {
    Queue.unsafeOffer(outbox, first)
    this.outboxes.add(outbox)
  }

  delete(outbox: Queue.Queue<string>): void {
    this.outboxes.delete(outbox)
  }
}

const broadcastStored = (clients: StreamClients, saved: Readonly<Record<string, unknown>>) =>
  clients.broadcast(JSON.stringify({ type: "event", data: saved }))

/**
 * `GET /stream`, the public server's WebSocket feed: `{"type":"initial","data":[…]}` (the
 * latest 300 events, as `GET /events/recent`) on connect, then `{"type":"event","data":…}` (the
 * answer to the `POST /events` that stored it) for each stored event. What the client sends is
 * read and dropped. A request that is not an upgrade gets the banner, as there. While a client
 * has more than `clients.bufferBytes` unread in its socket, messages to it are dropped, as Bun's
 * `ServerWebSocket.send` drops them past its backpressure limit (the socket stays open).
 */
export const stream = (store: EventStore, clients: StreamClients) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.headers["upgrade"]?.toLowerCase() !== "websocket") return bannerText()
    // The upgraded WebSocket writes to this same TCP socket; what it holds unsent is its backlog.
    const connection = NodeHttpServerRequest.toIncomingMessage(request).socket
    const socket = yield* request.upgrade
    const outbox = yield* Queue.unbounded<string>()
    yield* Effect.scoped(Effect.gen(function*() {
      const write = yield* socket.writer
      const send = (message: string) => connection.writableLength > clients.bufferBytes ? Effect.void : write(message)
      clients.add(outbox, JSON.stringify({ type: "initial", data: store.recent(defaultRecentLimit) }))
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(outbox), send)))
      yield* socket.runRaw(() => undefined)
    })).pipe(
      // A closed or broken socket ends this client only.
      Effect.catchAll(() => Effect.void),
      Effect.ensuring(Effect.sync(() => clients.delete(outbox)))
    )
    return HttpServerResponse.empty()
  }).pipe(Effect.catchTag("RequestError", () => Effect.succeed(HttpServerResponse.empty({ status: 400 }))))

/** CORS preflight: the public server answers 200 with an empty body of length 0 (not chunked). */
export const preflight: Answer = () =>
  Effect.succeed(HttpServerResponse.empty({ status: 200, headers: { ...cors, "content-length": "0" } }))

const errorMessages: Readonly<Record<number, string>> = {
  400: "Invalid request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  408: "Request timeout",
  429: "Too many requests",
  500: "Internal server error",
  502: "Bad gateway",
  503: "Service unavailable",
  504: "Gateway timeout"
}

/** The upstream's error writers: `{"error": "..."}`, as the public server writes its errors. */
export const upstream = (mode: EventsMode): Upstream => ({
  error: (_incoming, status, retryAfter) =>
    json(
      { error: errorMessages[status] ?? (status >= 500 ? "Server error" : "Request failed") },
      status,
      Option.match(retryAfter, {
        onNone: () => ({}),
        onSome: (delay) => ({ "retry-after": String(retryAfterSeconds(delay)) })
      })
    ),
  malformed: () =>
    HttpServerResponse.text(`{"source_app":"sandbox","id":`, { contentType: "application/json", headers: cors }),
  notFound: (incoming) =>
    mode === "public"
      ? bannerText()
      : json({ error: `Not found: ${incoming.method} ${incoming.path}` }, 404),
  // The server sets no limit of its own: Bun.serve's default maxRequestBodySize (128 MiB) applies.
  maxRequestBytes: 128 * 1024 * 1024,
  tooLarge: () => HttpServerResponse.text("Payload Too Large", { status: 413 }),
  isStream: () => false
})

const authorized = (incoming: Incoming, apiKey: Option.Option<Redacted.Redacted<string>>): boolean =>
  Option.match(apiKey, {
    onNone: () => true,
    onSome: (key) => incoming.headers["x-api-key"] === Redacted.value(key)
  })

const unauthorized = () => json({ error: "Unauthorized" }, 401)

/**
 * `POST /events`: stores the event and answers it back with its numeric `id` and `timestamp`.
 * An event nesting deeper than 1,000 levels of objects and arrays is refused with 400
 * `{"error": "Invalid request", "detail": …}` and not stored. The public server refuses so (its
 * `JSON.stringify` in `insertEvent` overflows) only much deeper: on Bun 1.4 it stored 39,687
 * levels and refused 40,000. The sandbox stops at 1,000 because Node's own `JSON.stringify`
 * overflows near 8,000 and every answer goes through it.
 * An event whose `source_app`, `session_id`, `hook_event_type`, `summary`, `model_name` or
 * `timestamp` is an object or array is refused with 400 `{"error": "Invalid request"}`, as there.
 */
export const postEvent = (
  store: EventStore,
  mode: EventsMode,
  apiKey: Option.Option<Redacted.Redacted<string>>,
  clients: StreamClients
): Answer =>
(incoming) =>
  Effect.sync(() => {
    if (!authorized(incoming, apiKey)) return unauthorized()
    return Either.match(parseJson(incoming.text), {
      // `JSON.parse` failures and a `null` body both throw inside the public server's try block.
      onLeft: () => json({ error: "Invalid request" }, 400),
      onRight: (body) => {
        if (body === null) return json({ error: "Invalid request" }, 400)
        return Either.match(decode(HookEvent, body), {
          onLeft: () => json({ error: "Missing required fields" }, 400),
          onRight: (event) => {
            const deep = tooDeep(event)
            if (deep !== undefined) return json({ error: "Invalid request", detail: `the event ${deep}` }, 400)
            if (unbindable(event) !== undefined) return json({ error: "Invalid request" }, 400)
            const dedupe = mode === "extended"
            const { duplicate, entry } = store.insert(event, incoming.time, dedupe)
            if (!(dedupe && duplicate)) broadcastStored(clients, entry.saved)
            return json(entry.saved)
          }
        })
      }
    })
  })

/**
 * `POST /events/batch` (extended mode only): a JSON array of events, each as for `POST /events`,
 * idempotent per client `id` (a repeated id, also within one batch, is stored once).
 *
 * - 200 `{"accepted": n, "duplicates": m}`: `n` events newly stored, `m` skipped as already
 *   stored; `n + m` is the length of the array.
 * - 400 `{"error": "Invalid request"}`: the body is not JSON or not an array.
 * - 400 `{"error": "Missing required fields", "index": i}`: item `i` (0-based) lacks
 *   `source_app`, `session_id`, `hook_event_type` or `payload`; nothing from the batch is stored.
 * - 400 `{"error": "Invalid request", "index": i, "detail": …}`: item `i` nests deeper than
 *   1,000 levels, or has a field SQLite cannot bind (as `POST /events`); nothing from the batch
 *   is stored.
 * - 401 `{"error": "Unauthorized"}`: a key is configured and `X-API-Key` does not match it.
 */
export const postBatch = (
  store: EventStore,
  apiKey: Option.Option<Redacted.Redacted<string>>,
  clients: StreamClients
): Answer =>
(incoming) =>
  Effect.sync(() => {
    if (!authorized(incoming, apiKey)) return unauthorized()
    const items = Either.flatMap(parseJson(incoming.text), (body) => decode(Batch, body))
    if (Either.isLeft(items)) return json({ error: "Invalid request" }, 400)
    const events: Array<HookEvent> = []
    for (const [index, item] of items.right.entries()) {
      const event = decode(HookEvent, item)
      if (Either.isLeft(event)) return json({ error: "Missing required fields", index }, 400)
      const deep = tooDeep(event.right)
      if (deep !== undefined) return json({ error: "Invalid request", index, detail: `the event ${deep}` }, 400)
      const field = unbindable(event.right)
      if (field !== undefined) return json({ error: "Invalid request", index, detail: `${field} is not text or a number` }, 400)
      events.push(event.right)
    }
    let duplicates = 0
    for (const event of events) {
      const { duplicate, entry } = store.insert(event, incoming.time, true)
      if (duplicate) duplicates++
      else broadcastStored(clients, entry.saved)
    }
    return json({ accepted: events.length - duplicates, duplicates })
  })

/** The public server's default for `GET /events/recent` (`parseInt(limit || '300')`). */
export const defaultRecentLimit = 300

/**
 * The public server's answer when `limit` is not a number: its SQLite query throws on the NaN
 * ("datatype mismatch") and Bun answers with its error page, 500 text/html and no CORS headers.
 */
const failedQuery = () =>
  HttpServerResponse.text("<!doctype html>\n<title>Internal Server Error</title>\n", {
    status: 500,
    contentType: "text/html;charset=utf-8"
  })

/**
 * `GET /events/recent?limit=N` (default 300): the latest N events, oldest first (newest last).
 * A `limit` that is not a number: 500 in public mode (see {@link failedQuery}), the default here.
 */
export const recent = (store: EventStore, mode: EventsMode): Answer => (incoming) =>
  Effect.sync(() => {
    const limit = Number.parseInt(incoming.query["limit"] || String(defaultRecentLimit), 10)
    if (Number.isNaN(limit)) return mode === "public" ? failedQuery() : json(store.recent(defaultRecentLimit))
    return json(store.recent(limit))
  })

/** `GET /events/filter-options`: distinct source apps, session ids and hook event types. */
export const filterOptions = (store: EventStore): Answer => () => Effect.sync(() => json(store.filterOptions()))

/** `GET /health` (extended mode only): `{"status":"ok"}`. */
export const health: Answer = () => Effect.succeed(json({ status: "ok" }))
