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
 * - `POST /v1beta/models/{model}:generateContent` (faults: `"gemini"`), `…:countTokens`
 * - `POST /events` (faults: `"events"`), `GET /events/recent`, `GET /events/filter-options`;
 *   extended mode also `POST /events/batch` (faults: `"eventsBatch"`), `GET /health`
 * - `POST /v1/messages` (faults: `"anthropic"`), `POST /v1/messages/count_tokens`
 * - `GET /v1/realtime`: the OpenAI Realtime WebSocket (its own per-connection fault plans and
 *   scripted model, `Service.realtime`; see `sandbox/Realtime.ts`)
 * - `GET /pages/form`, `/pages/submitted`, `/pages/never`: local pages for browser agents; a
 *   `generateContent` request with the `computerUse` tool is answered from `computerUsePlan`
 * - anything else: 404 in the format of the API its path belongs to (`/v1beta/…` Gemini,
 *   `/v1/…` Anthropic); other paths answer like the observability server (public mode: 200
 *   text/plain "Multi-Agent Observability Server"; extended mode: that for `GET /`, else 404 JSON).
 *
 * @since 0.1.0
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
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
import * as Anthropic from "./sandbox/Anthropic.js"
import * as ComputerUse from "./sandbox/ComputerUse.js"
import * as Events from "./sandbox/Events.js"
import type { FaultKind, FaultPlan, PlanState, RouteName } from "./sandbox/FaultPlan.js"
import { initialState, isRouteName, kindOf, nextAction, normal } from "./sandbox/FaultPlan.js"
import * as Gemini from "./sandbox/Gemini.js"
import * as Realtime from "./sandbox/Realtime.js"
import * as Pages from "./sandbox/Pages.js"
import type { Answer, Upstream } from "./sandbox/Http.js"
import { readIncoming, recordedBody, redactHeaders, redactQuery } from "./sandbox/Http.js"

export type { FaultKind, FaultMix, FaultPlan, FaultStep, RouteName } from "./sandbox/FaultPlan.js"
export { routeNames } from "./sandbox/FaultPlan.js"
export type { EventsMode, StoredEvent } from "./sandbox/Events.js"
export type { RealtimeConnection, RealtimeFaultStep, RealtimePlan, RealtimeRule } from "./sandbox/Realtime.js"
export { ComputerUsePlan, parsePlan as parseComputerUsePlan, planFinished } from "./sandbox/ComputerUse.js"
export { formTargets } from "./sandbox/Pages.js"

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
}

/** What the client got: an HTTP status, or no answer at all. */
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
  /** Parsed JSON body, or the raw text when it is not JSON, or `undefined` when empty. */
  readonly body: unknown
  /** The fault the plan injected ("none" for a plain normal answer). */
  readonly fault: FaultKind
  readonly outcome: Outcome
}

/** The sandbox could not listen (e.g. the port is in use). */
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
  /** Every route back to normal answers. */
  readonly clearPlans: Effect.Effect<void>
  /** Every recorded request, in arrival order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  readonly requestsFor: (route: RouteName | "other") => Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** Accepted observability events, in the order stored (duplicates rejected in extended mode are not here). */
  readonly events: Effect.Effect<ReadonlyArray<Events.StoredEvent>>
  /**
   * `stored`: events stored; `distinctIds`: distinct client `id`s among them; `duplicates`: events
   * (single or batch items) whose client `id` had already been stored (extended mode skips them,
   * public mode stores them again).
   */
  readonly eventStats: Effect.Effect<{ readonly stored: number; readonly distinctIds: number; readonly duplicates: number }>
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

/**
 * Starts a sandbox listening on `options.host:options.port`; it stops when the scope closes.
 * Fails with `SandboxError` when it cannot listen.
 */
export const make: (options?: Options) => Effect.Effect<Service, SandboxError, Scope.Scope> = Effect.fn(
  "Sandbox.make"
)(function*(options: Options = {}) {
  const host = options.host ?? "127.0.0.1"
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
  // Plain arrays: appending to an immutable list in a Ref would cost O(n) per request.
  const records: Array<RecordedRequest> = []
  const store = new Events.EventStore()
  const computerUse = ComputerUse.makeResponder(options.computerUsePlan)
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

  /**
   * Serves one route: `answer` is its normal answer, `upstream` writes its faults in the right
   * format; `route` names its fault plan ("other": none).
   */
  const handle = (route: RouteName | "other", upstream: Upstream, answer: Answer) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const time = yield* Clock.currentTimeMillis
      const number = ++sequence
      const text = yield* Effect.orElseSucceed(request.text, () => "")
      const action = route === "other" ? normal : yield* takeAction(route)
      const incoming = readIncoming(request, params, text, time, number)
      const record = (outcome: Outcome) =>
        Effect.sync(() => {
          if (!recordRequests) return
          records.push({
            sequence: number,
            route,
            method: incoming.method,
            path: incoming.path,
            query: redactQuery(incoming.query),
            time,
            headers: redactHeaders(incoming.headers),
            body: recordedBody(text),
            fault: kindOf(action),
            outcome
          })
        })
      switch (action._tag) {
        case "Hang": {
          yield* record("hang")
          // Released by the platform: a closed connection interrupts this fiber.
          return yield* Effect.never
        }
        case "Reset": {
          yield* record("reset")
          yield* Effect.sync(() => NodeHttpServerRequest.toIncomingMessage(request).socket.resetAndDestroy())
          return yield* Effect.never
        }
        case "Malformed": {
          yield* record("malformed")
          return upstream.malformed(incoming)
        }
        case "Status": {
          const response = upstream.error(incoming, action.status, action.retryAfter)
          yield* record(response.status)
          if (Option.isSome(action.latency)) yield* Effect.sleep(action.latency.value)
          return response
        }
        case "Normal": {
          const response = yield* answer(incoming)
          yield* record(response.status)
          if (Option.isSome(action.latency)) yield* Effect.sleep(action.latency.value)
          return response
        }
      }
    })

  const events = Events.upstream(mode)
  const fallback: Answer = (incoming) => {
    if (incoming.path.startsWith("/v1beta/") || /^\/v1\/models\/[^/]*:/.test(incoming.path)) {
      return Effect.succeed(Gemini.upstream.notFound(incoming))
    }
    if (incoming.path.startsWith("/v1/")) return Effect.succeed(Anthropic.upstream.notFound(incoming))
    if (incoming.method === "OPTIONS") return Events.preflight(incoming)
    if (mode === "extended" && incoming.path === "/" && incoming.method === "GET") return Events.banner(incoming)
    return Effect.succeed(events.notFound(incoming))
  }

  // find-my-way reads `:model:generateContent` as ONE parameter named "model:generateContent"
  // (matching any action): a regex parameter ends the name, and `::` is an escaped literal colon.
  const router = HttpRouter.empty.pipe(
    HttpRouter.post(
      "/v1beta/models/:model(^[^/:]+)::generateContent",
      handle("gemini", Gemini.upstream, Gemini.generateContent(geminiKey, computerUse))
    ),
    HttpRouter.post(
      "/v1beta/models/:model(^[^/:]+)::countTokens",
      handle("other", Gemini.upstream, Gemini.countTokens(geminiKey))
    ),
    HttpRouter.post("/v1/messages", handle("anthropic", Anthropic.upstream, Anthropic.messages(anthropicKey))),
    HttpRouter.post(
      "/v1/messages/count_tokens",
      handle("other", Anthropic.upstream, Anthropic.countTokens(anthropicKey))
    ),
    HttpRouter.get("/v1/realtime", realtime.route),
    HttpRouter.post("/events", handle("events", events, Events.postEvent(store, mode, observabilityKey))),
    HttpRouter.get("/events/recent", handle("other", events, Events.recent(store))),
    HttpRouter.get("/events/filter-options", handle("other", events, Events.filterOptions(store))),
    mode === "extended"
      ? (self) =>
        self.pipe(
          HttpRouter.post("/events/batch", handle("eventsBatch", events, Events.postBatch(store, observabilityKey))),
          HttpRouter.get("/health", handle("other", events, Events.health))
        )
      : identity,
    HttpRouter.get("/pages/:page", handle("other", Pages.upstream, Pages.serve)),
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
            error.cause instanceof Error ? error.cause.message : String(error.cause)
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
    setPlan: (route, plan) => Ref.update(plans, (current) => new Map(current).set(route, initialState(plan))),
    clearPlans: Ref.set(plans, new Map()),
    requests: Effect.sync(() => records.slice()),
    requestsFor: (route) => Effect.sync(() => records.filter((record) => record.route === route)),
    events: Effect.sync(() => store.events()),
    eventStats: Effect.sync(() => store.stats()),
    stop,
    start,
    reset: Effect.zipRight(
      Ref.set(plans, new Map()),
      Effect.sync(() => {
        records.length = 0
        store.clear()
        computerUse.setPlan(undefined)
      })
    ).pipe(Effect.zipRight(realtime.reset)),
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
          keys: options?.geminiApiKey === undefined && options?.anthropicApiKey === undefined
            ? "default (\"sandbox-key\")"
            : "configured"
        })
      )
      return yield* Effect.never
    })
  )
