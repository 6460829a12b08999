/**
 * A loopback emulator of the three upstream APIs big3 talks to (Gemini generateContent, the
 * multi-agent observability events server, Anthropic Messages), with injected faults, for
 * integration tests, the demo and benchmarks.
 *
 * One `HttpRouter` app served by `NodeHttpServer` on 127.0.0.1 (port 0 → ephemeral). Each request
 * on a route with a {@link FaultPlan} consumes one step of it (a scripted sequence, or a seeded
 * random mix) before, or instead of, its normal answer; every request is recorded (keys redacted)
 * so tests can assert attempts, timing and outcomes. `stop` / `start` simulate an outage and a
 * recovery on the same port.
 *
 * Routes:
 * - `POST /{v1,v1beta}/models/{model}:generateContent` and `…:streamGenerateContent` (faults:
 *   `"gemini"`), `…:countTokens`
 * - `POST /events` (faults: `"events"`), `GET /events/recent`, `GET /events/filter-options`, the
 *   `GET /stream` WebSocket feed of stored events; extended mode also `POST /events/batch`
 *   (faults: `"eventsBatch"`), `GET /health`
 * - `POST /v1/messages` (faults: `"anthropic"`), `POST /v1/messages/count_tokens`
 * - `GET /v1/realtime`: the OpenAI Realtime WebSocket (its own per-connection fault plans and
 *   scripted model, `Service.realtime`; see `sandbox/Realtime.ts`)
 * - `GET /pages/form`, `/pages/submitted`, `/pages/never`: local pages for browser agents; a
 *   `generateContent` request with the `computerUse` tool is answered from `computerUsePlan`
 * - `/__sandbox/…`: the admin API, for loopback clients only (see `sandbox/Admin.ts`)
 * - anything else: 404 in the format of the API its path belongs to (`/v1beta/…` Gemini,
 *   `/v1/…` Anthropic); other paths answer like the observability server (public mode: 200
 *   text/plain "Multi-Agent Observability Server"; extended mode: that for `GET /`, else 404 JSON).
 *
 * Hostile input is bounded as the real APIs bound it: a request body over the upstream's limit
 * (Gemini 20 MiB, Anthropic 32 MiB, the observability server's Bun default of 128 MiB) is refused
 * in that upstream's format without being kept, the request log is a ring (10,000 requests,
 * 64 MiB of bodies by default), and the event store keeps the newest 100,000 events by default.
 *
 * @since 0.1.0
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as SynchronizedRef from "effect/SynchronizedRef"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Admin from "./sandbox/Admin.js"
import * as Anthropic from "./sandbox/Anthropic.js"
import * as ComputerUse from "./sandbox/ComputerUse.js"
import * as Events from "./sandbox/Events.js"
import type { FaultPlan, PlanState, RouteName } from "./sandbox/FaultPlan.js"
import { initialState, isRouteName, nextAction, normal } from "./sandbox/FaultPlan.js"
import * as Gemini from "./sandbox/Gemini.js"
import * as Pages from "./sandbox/Pages.js"
import * as Realtime from "./sandbox/Realtime.js"
import type { Answer } from "./sandbox/Http.js"
import { recordedBody } from "./sandbox/Http.js"
import type { RecordedRequest } from "./sandbox/RequestLog.js"
import { defaultMaxBodyBytes, defaultMaxEntries, RequestLog } from "./sandbox/RequestLog.js"
import * as Route from "./sandbox/Route.js"
import { messageOf } from "./internal/messageOf.js"

export type { FaultKind, FaultMix, FaultPlan, FaultStep, MidStreamKind, QuotaWindow, RouteName } from "./sandbox/FaultPlan.js"
export { routeNames } from "./sandbox/FaultPlan.js"
export type { EventsMode, StoredEvent } from "./sandbox/Events.js"
export type { RealtimeConnection, RealtimeFaultStep, RealtimePlan, RealtimeRule } from "./sandbox/Realtime.js"
export { ComputerUsePlan, parsePlan as parseComputerUsePlan, planFinished } from "./sandbox/ComputerUse.js"
export { formTargets } from "./sandbox/Pages.js"
export type { Outcome, RecordedRequest } from "./sandbox/RequestLog.js"
export type { ModelTurn as GeminiModelTurn, Responder as GeminiResponder } from "./sandbox/Gemini.js"
export { parsePlan, parsePlans, parseRealtimePlan, type Plans } from "./sandbox/Admin.js"

/** A key given as plain text or as `Redacted`; either way only compared, never recorded or logged. */
export type Secret = string | Redacted.Redacted<string>

/** Sandbox configuration; every field is optional. */
export interface Options {
  /** Port to listen on; 0 (the default) picks a free one, kept across `stop` / `start`. */
  readonly port?: number | undefined
  /** Interface to listen on; default "127.0.0.1". */
  readonly host?: string | undefined
  /** The key Gemini requests must carry (`x-goog-api-key` or `?key=`); default "sandbox-key". */
  readonly geminiApiKey?: Secret | undefined
  /** The key Anthropic requests must carry (`x-api-key` or `authorization: Bearer`); default "sandbox-key". */
  readonly anthropicApiKey?: Secret | undefined
  /** When set, `POST /events` and `/events/batch` require a matching `X-API-Key` header (else 401). */
  readonly observabilityApiKey?: Secret | undefined
  /** `"extended"` (default) or `"public"`: see {@link EventsMode}. */
  readonly eventsMode?: Events.EventsMode | undefined
  /** Fault plans in force from the start, per route. */
  readonly plans?: { readonly [K in RouteName]?: FaultPlan | undefined } | undefined
  /** Record requests (default true); benchmarks may turn it off to keep memory flat. */
  readonly recordRequests?: boolean | undefined
  /** The key Realtime connections must carry (`authorization: Bearer`); default "sandbox-key". */
  readonly openaiApiKey?: Secret | undefined
  /** The Realtime model's script (default: it echoes "sandbox answer to: <message>"). */
  readonly realtimeScript?: ReadonlyArray<Realtime.RealtimeRule> | undefined
  /** The Realtime fault plan in force from the start, one step per connection. */
  readonly realtimePlan?: Realtime.RealtimePlan | undefined
  /** Answers requests carrying the `computerUse` tool, turn by turn (see `ComputerUsePlan`). */
  readonly computerUsePlan?: ComputerUse.ComputerUsePlan | undefined
  /**
   * Bounds of the request log, a ring that drops the oldest first: `maxEntries` requests
   * (default 10,000) and `maxBodyBytes` of kept bodies (default 64 MiB).
   */
  readonly requestLog?: { readonly maxEntries?: number | undefined; readonly maxBodyBytes?: number | undefined } | undefined
  /**
   * How many observability events the store keeps: the newest, the oldest dropped first and
   * counted (`eventStats.evicted`); default 100,000 (≈ 80 MB of typical hook events). Dedupe of
   * client `id`s covers the kept events only, so a redelivered id whose event was dropped is
   * stored again.
   */
  readonly maxEvents?: number | undefined
  /**
   * What one `GET /stream` client that does not read may have waiting, in bytes, before messages
   * to it are dropped; default 16 MiB, Bun's WebSocket backpressure limit, as the public server.
   */
  readonly streamBufferBytes?: number | undefined
  /**
   * The largest request body any route takes, in bytes; default: each real API's own limit
   * (Gemini 20 MiB, Anthropic 32 MiB, observability 128 MiB).
   */
  readonly maxRequestBytes?: number | undefined
  /**
   * Extra ways of answering Gemini `generateContent`, asked in order before the default answer
   * (e.g. a computer-use plan when the request carries the `computerUse` tool).
   */
  readonly geminiResponders?: ReadonlyArray<Gemini.Responder> | undefined
}

/** The sandbox could not start: it could not listen (e.g. the port is in use), or an option is out of range. */
export class SandboxError extends Schema.TaggedError<SandboxError>()("SandboxError", {
  message: Schema.String,
  host: Schema.String,
  port: Schema.Number,
  cause: Schema.optional(Schema.Defect)
}) {}

export interface Service {
  /** "http://127.0.0.1:<port>", no trailing slash. */
  readonly url: string
  readonly port: number
  /** Replaces the plan of `route`; a random mix restarts from its seed. */
  readonly setPlan: (route: RouteName, plan: FaultPlan) => Effect.Effect<void>
  /** Every route back to normal answers, the Realtime endpoint's included. */
  readonly clearPlans: Effect.Effect<void>
  /** Every recorded request still in the log (a ring: the oldest are dropped first), in arrival order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  readonly requestsFor: (route: RouteName | "other") => Effect.Effect<ReadonlyArray<RecordedRequest>>
  /**
   * The stored observability events (the newest `maxEvents`), in the order stored; server `id`s
   * are never reused. Duplicates rejected in extended mode are not here.
   */
  readonly events: Effect.Effect<ReadonlyArray<Events.StoredEvent>>
  /**
   * `stored`: events in the store now; `distinctIds`: distinct client `id`s among them;
   * `duplicates`: events (single or batch items) whose client `id` was in the store already
   * (extended mode skips them, public mode stores them again); `evicted`: events dropped as the
   * oldest past `maxEvents`. All since the last `reset`.
   */
  readonly eventStats: Effect.Effect<{
    readonly stored: number
    readonly distinctIds: number
    readonly duplicates: number
    readonly evicted: number
  }>
  /** Closes the listener and every open connection (hung requests included): clients see refused / reset. */
  readonly stop: Effect.Effect<void>
  /** Listens again on the same port; a no-op when running. Fails if the port was taken meanwhile. */
  readonly start: Effect.Effect<void, SandboxError>
  /** Clears recorded requests, stored events and plans. */
  readonly reset: Effect.Effect<void>
  /** The Realtime WebSocket endpoint. */
  readonly realtime: {
    /** "ws://127.0.0.1:<port>/v1/realtime" */
    readonly url: string
    /** Replaces the plan; the next connection takes its first step. */
    readonly setPlan: (plan: Realtime.RealtimePlan) => Effect.Effect<void>
    readonly setScript: (script: ReadonlyArray<Realtime.RealtimeRule>) => Effect.Effect<void>
    /** Every connection so far, in order, with the client events it received. */
    readonly connections: Effect.Effect<ReadonlyArray<Realtime.RealtimeConnection>>
  }
  /** Replaces the computer-use plan and starts it over (`undefined`: the default answers again). */
  readonly setComputerUsePlan: (plan: ComputerUse.ComputerUsePlan | undefined) => Effect.Effect<void>
}

export class Sandbox extends Context.Tag("big3/Sandbox")<Sandbox, Service>() {}

const toRedacted = (secret: Secret): Redacted.Redacted<string> =>
  Redacted.isRedacted(secret) ? secret : Redacted.make(secret)

interface Running {
  readonly scope: Scope.CloseableScope
  readonly server: Http.Server
  readonly sockets: Set<Net.Socket>
}

const validPort = (port: number): boolean => Number.isInteger(port) && port >= 0 && port <= 65535

/**
 * Starts a sandbox listening on `options.host:options.port`; it stops when the scope closes.
 * Fails with `SandboxError` when it cannot listen (a port in use, a port outside 0–65535).
 */
export const make: (options?: Options) => Effect.Effect<Service, SandboxError, Scope.Scope> = Effect.fn(
  "Sandbox.make"
)(function*(options: Options = {}) {
  const host = options.host ?? "127.0.0.1"
  if (options.port !== undefined && !validPort(options.port)) {
    return yield* new SandboxError({
      message: `sandbox cannot listen on ${host}:${options.port}: a port is an integer from 0 to 65535`,
      host,
      port: options.port
    })
  }
  const refused = (message: string) => new SandboxError({ message: `sandbox ${message}`, host, port: options.port ?? 0 })
  const maxEvents = options.maxEvents ?? Events.defaultMaxEvents
  if (!Number.isInteger(maxEvents) || maxEvents < 1) {
    return yield* refused(`maxEvents must be a positive integer, got ${maxEvents}`)
  }
  const streamBufferBytes = options.streamBufferBytes ?? Events.defaultStreamBufferBytes
  if (!Number.isInteger(streamBufferBytes) || streamBufferBytes < 0) {
    return yield* refused(`streamBufferBytes must be a whole number of bytes, got ${streamBufferBytes}`)
  }
  const mode = options.eventsMode ?? "extended"
  const recordRequests = options.recordRequests ?? true
  const geminiKey = toRedacted(options.geminiApiKey ?? "sandbox-key")
  const anthropicKey = toRedacted(options.anthropicApiKey ?? "sandbox-key")
  const observabilityKey = Option.map(Option.fromNullable(options.observabilityApiKey), toRedacted)

  const initialPlans = new Map<RouteName, PlanState>()
  for (const [route, plan] of Object.entries(options.plans ?? {})) {
    if (isRouteName(route) && plan !== undefined) initialPlans.set(route, initialState(plan))
  }
  const plans = yield* Ref.make<ReadonlyMap<RouteName, PlanState>>(initialPlans)
  // Mutable structures: appending to an immutable list in a Ref would cost O(n) per request.
  const log = new RequestLog<Route.Recorded>(
    options.requestLog?.maxEntries ?? defaultMaxEntries,
    options.requestLog?.maxBodyBytes ?? defaultMaxBodyBytes
  )
  const store = new Events.EventStore(maxEvents)
  const streamClients = new Events.StreamClients(streamBufferBytes)
  const computerUse = ComputerUse.makePlayer(options.computerUsePlan)
  const rateLimits = new Anthropic.RateLimits()
  let sequence = 0
  const realtime = yield* Realtime.make({
    apiKey: toRedacted(options.openaiApiKey ?? "sandbox-key"),
    script: options.realtimeScript,
    plan: options.realtimePlan
  })

  const takeAction = (route: RouteName) =>
    Ref.modify(plans, (current) => {
      const state = current.get(route)
      if (state === undefined) return [normal, current] as const
      const [action, next] = nextAction(route, state)
      const updated = new Map(current)
      Option.match(next, { onNone: () => updated.delete(route), onSome: (rest) => updated.set(route, rest) })
      return [action, updated] as const
    })

  const handle = Route.makeHandle({
    maxRequestBytes: options.maxRequestBytes,
    recordRequests,
    log,
    takeAction,
    nextSequence: () => ++sequence
  })

  const requests = Effect.sync(() =>
    log.entries().map(({ text, value }): RecordedRequest => ({ ...value, body: text === undefined ? undefined : recordedBody(text) }))
  )
  const requestsFor = (route: string | undefined) =>
    Effect.map(requests, (all) => route === undefined ? all : all.filter((record) => record.route === route))
  const setPlan = (route: RouteName, plan: FaultPlan) =>
    Ref.update(plans, (current) => new Map(current).set(route, initialState(plan)))
  const clearPlans = Effect.zipRight(Ref.set(plans, new Map()), realtime.setPlan([]))
  const reset = Effect.zipRight(
    clearPlans,
    Effect.sync(() => {
      log.clear()
      store.clear()
      rateLimits.clear()
      computerUse.setPlan(undefined)
    })
  ).pipe(Effect.zipRight(realtime.reset))
  const control: Admin.Control = {
    setPlan,
    clearPlan: (route) =>
      Ref.update(plans, (current) => {
        const updated = new Map(current)
        updated.delete(route)
        return updated
      }),
    setRealtimePlan: realtime.setPlan,
    clearPlans,
    plans: Effect.gen(function*() {
      const out: Record<string, unknown> = {}
      for (const [route, state] of yield* Ref.get(plans)) {
        out[route] = Admin.planToJson(state._tag === "Mix" ? state.mix : state.steps.slice(state.index))
      }
      const realtimeLeft = yield* realtime.plan
      if (realtimeLeft.length > 0) out[Admin.realtimeRoute] = Admin.realtimePlanToJson(realtimeLeft)
      return out
    }),
    requests: requestsFor,
    events: Effect.sync(() => ({ stats: store.stats(), events: store.events() })),
    reset
  }

  const events = Events.upstream(mode)
  const anthropic = Anthropic.upstream(rateLimits)
  const fallback: Answer = (incoming) => {
    if (incoming.path.startsWith("/v1beta/") || /^\/v1\/models\/[^/]*:/.test(incoming.path)) {
      return Effect.succeed(Gemini.upstream.notFound(incoming))
    }
    if (incoming.path.startsWith("/v1/")) return Effect.succeed(anthropic.notFound(incoming))
    if (incoming.method === "OPTIONS") return Events.preflight(incoming)
    if (mode === "extended" && incoming.path === "/" && incoming.method === "GET") return Events.banner(incoming)
    return Effect.succeed(events.notFound(incoming))
  }

  const responders = [...(options.geminiResponders ?? []), computerUse.responder]
  // find-my-way reads `:model:generateContent` as ONE parameter named "model:generateContent"
  // (matching any action): a regex parameter ends the name, and `::` is an escaped literal colon.
  // The real API serves every model method under both versions.
  const geminiRoutes = <E, R>(router: HttpRouter.HttpRouter<E, R>) =>
    ["v1", "v1beta"].reduce((self, version) =>
      self.pipe(
        HttpRouter.post(
          `/${version}/models/:model(^[^/:]+)::generateContent`,
          handle("gemini", Gemini.upstream, Gemini.generateContent(geminiKey, responders))
        ),
        HttpRouter.post(
          `/${version}/models/:model(^[^/:]+)::streamGenerateContent`,
          handle("gemini", Gemini.upstream, Gemini.streamGenerateContent(geminiKey, responders))
        ),
        HttpRouter.post(
          `/${version}/models/:model(^[^/:]+)::countTokens`,
          handle("other", Gemini.upstream, Gemini.countTokens(geminiKey))
        )
      ), router)

  const router = HttpRouter.empty.pipe(
    geminiRoutes,
    HttpRouter.post("/v1/messages", handle("anthropic", anthropic, Anthropic.messages(anthropicKey, rateLimits))),
    HttpRouter.post(
      "/v1/messages/count_tokens",
      handle("other", anthropic, Anthropic.countTokens(anthropicKey))
    ),
    HttpRouter.get("/v1/realtime", realtime.route),
    HttpRouter.post("/events", handle("events", events, Events.postEvent(store, mode, observabilityKey, streamClients))),
    HttpRouter.get("/events/recent", handle("other", events, Events.recent(store, mode))),
    HttpRouter.get("/events/filter-options", handle("other", events, Events.filterOptions(store))),
    HttpRouter.get("/stream", Events.stream(store, streamClients)),
    mode === "extended"
      ? (self) =>
        self.pipe(
          HttpRouter.post("/events/batch", handle("eventsBatch", events, Events.postBatch(store, observabilityKey, streamClients))),
          HttpRouter.get("/health", handle("other", events, Events.health))
        )
      : identity,
    HttpRouter.get("/pages/:page", handle("other", Pages.upstream, Pages.serve)),
    Admin.routes(control),
    HttpRouter.all("*", handle("other", events, fallback))
  )

  let port = options.port ?? 0

  const listen = Effect.gen(function*() {
    const scope = yield* Scope.make()
    const server = Http.createServer()
    const sockets = new Set<Net.Socket>()
    server.on("connection", (socket) => {
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
    })
    const httpServer = yield* NodeHttpServer.make(() => server, { port, host }).pipe(
      Scope.extend(scope),
      Effect.mapError((error) =>
        new SandboxError({
          message: `sandbox cannot listen on ${host}:${port}: ${
            messageOf(error.cause)
          }`,
          host,
          port,
          cause: error.cause
        })
      ),
      Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)
    )
    // The sandbox needs no spans; tracing would cost ~75 µs per request in benchmarks.
    yield* httpServer.serve(router).pipe(
      Scope.extend(scope),
      HttpMiddleware.withTracerDisabledWhenEffect(() => true)
    )
    if (httpServer.address._tag === "TcpAddress") port = httpServer.address.port
    const running: Running = { scope, server, sockets }
    return running
  })

  const shutdown = (running: Running) =>
    Effect.async<void>((resume) => {
      running.server.close(() => resume(Effect.void))
      // `close` alone waits for busy connections, and a hung request never finishes.
      running.server.closeAllConnections()
      for (const socket of running.sockets) socket.destroy()
    }).pipe(Effect.zipRight(Scope.close(running.scope, Exit.void)))

  const state = yield* SynchronizedRef.make(Option.none<Running>())
  const stop = SynchronizedRef.updateEffect(state, (current) =>
    Option.match(current, {
      onNone: () => Effect.succeed(current),
      onSome: (running) => Effect.as(shutdown(running), Option.none())
    }))
  const start = SynchronizedRef.updateEffect(state, (current) =>
    Option.isSome(current) ? Effect.succeed(current) : Effect.map(listen, Option.some))

  yield* Effect.addFinalizer(() => stop)
  yield* start

  const authority = `${host.includes(":") ? `[${host}]` : host}:${port}`
  return Sandbox.of({
    url: `http://${authority}`,
    port,
    setPlan,
    clearPlans,
    requests,
    requestsFor,
    events: Effect.sync(() => store.events()),
    eventStats: Effect.sync(() => store.stats()),
    stop,
    start,
    reset,
    realtime: {
      url: `ws://${authority}/v1/realtime`,
      setPlan: realtime.setPlan,
      setScript: realtime.setScript,
      connections: realtime.connections
    },
    setComputerUsePlan: (plan) => Effect.sync(() => computerUse.setPlan(plan))
  })
})

/** The sandbox as a layer; it stops when the layer is released. */
export const layer = (options?: Options): Layer.Layer<Sandbox, SandboxError> => Layer.scoped(Sandbox, make(options))

/**
 * Serves a sandbox until interrupted, logging its URL (the `big3 sandbox` command).
 */
export const run = (options?: Options): Effect.Effect<never, SandboxError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const sandbox = yield* make(options)
      yield* Effect.logInfo(`big3 sandbox listening on ${sandbox.url}`).pipe(
        Effect.annotateLogs({
          gemini: `${sandbox.url}/v1beta/models/{model}:generateContent`,
          events: `${sandbox.url}/events (${options?.eventsMode ?? "extended"} mode)`,
          anthropic: `${sandbox.url}/v1/messages`,
          realtime: sandbox.realtime.url,
          computerUse: options?.computerUsePlan === undefined
            ? "default answers"
            : `a plan of ${options.computerUsePlan.length} turns; pages at ${sandbox.url}/pages/form`,
          admin: `${sandbox.url}${Admin.prefix}/plans`,
          faults: [...Object.keys(options?.plans ?? {}), ...((options?.realtimePlan ?? []).length > 0 ? ["realtime"] : [])]
            .join(", ") || "none",
          keys: options?.geminiApiKey === undefined && options?.anthropicApiKey === undefined
            ? "default (\"sandbox-key\")"
            : "configured"
        })
      )
      return yield* Effect.never
    })
  )
