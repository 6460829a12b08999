/**
 * Chaos from outside the process: fault plans as JSON (the `--faults FILE` of `big3 sandbox` and
 * the admin API), and the admin API itself, served on the sandbox's own port under
 * `/__sandbox/` to loopback clients only.
 *
 * - `GET /__sandbox/plans`: the plans in force (what is left of each script).
 * - `PUT /__sandbox/plans/{route}`: set one route's plan (body: a plan). The route `realtime` is the
 *   Realtime WebSocket endpoint, whose plan is a list of steps, one per connection.
 * - `POST /__sandbox/plans`: set several (body: `{ "<route>": plan, … }`, the `--faults` shape).
 * - `DELETE /__sandbox/plans/{route}`, `DELETE /__sandbox/plans`: back to normal answers.
 * - `GET /__sandbox/requests[?route=gemini]`: the recorded requests (keys redacted), oldest first.
 * - `GET /__sandbox/events`: the stored observability events (the newest `maxEvents`) and their
 *   counts (`stored`, `distinctIds`, `duplicates`, `evicted`).
 * - `POST /__sandbox/reset`: clear plans, recorded requests and stored events.
 *
 * A plan is a JSON array of steps or a seeded mix, as `Sandbox.FaultPlan` (for `realtime`, an array
 * of steps as `Sandbox.RealtimePlan`); durations are Effect duration strings (`"2 seconds"`,
 * `"45.8 seconds"`) or numbers of milliseconds.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type { FaultPlan, RouteName } from "./FaultPlan.js"
import { isRouteName, routeNames } from "./FaultPlan.js"
import { answeringDefects, readBody } from "./Http.js"
import type { RealtimeFaultStep, RealtimePlan } from "./Realtime.js"
import { messageOf } from "../internal/messageOf.js"

// ---------------------------------------------------------------------------------------------
// Fault plans as JSON
// ---------------------------------------------------------------------------------------------

/** A duration in JSON: milliseconds, or an Effect duration string ("2 seconds", "1500 millis"). */
const DurationJson = Schema.transformOrFail(
  Schema.Union(Schema.Number.pipe(Schema.nonNegative()), Schema.String),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) =>
      Option.match(Duration.decodeUnknown(input), {
        onNone: () =>
          ParseResult.fail(
            new ParseResult.Type(ast, input, `expected a duration such as "2 seconds" or a number of milliseconds`)
          ),
        onSome: ParseResult.succeed
      }),
    encode: (duration) => ParseResult.succeed(Duration.toMillis(duration))
  }
)

const Status = Schema.Int.pipe(Schema.between(100, 599))
const Rate = Schema.Number.pipe(Schema.between(0, 1))

const StatusStep = Schema.Struct({
  status: Status,
  retryAfter: Schema.optional(DurationJson),
  latency: Schema.optional(DurationJson),
  quota: Schema.optional(Schema.Literal("minute", "day"))
})
const LatencyStep = Schema.Struct({ latency: DurationJson })
const HangStep = Schema.Struct({ hang: Schema.Literal(true) })
const ResetStep = Schema.Struct({ reset: Schema.Literal(true) })
const MalformedStep = Schema.Struct({ malformed: Schema.Literal(true) })
const MidStreamStep = Schema.Struct({
  midStream: Schema.Literal("error", "hang", "reset", "end"),
  after: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  status: Schema.optional(Status)
})

type FaultStep =
  | number
  | typeof StatusStep.Type
  | typeof LatencyStep.Type
  | typeof HangStep.Type
  | typeof ResetStep.Type
  | typeof MalformedStep.Type
  | typeof MidStreamStep.Type

const FaultMix = Schema.Struct({
  seed: Schema.Int,
  rates: Schema.Struct({
    rateLimited: Schema.optional(Rate),
    serverError: Schema.optional(Rate),
    latency: Schema.optional(Rate),
    hang: Schema.optional(Rate),
    reset: Schema.optional(Rate),
    malformed: Schema.optional(Rate)
  }),
  latency: Schema.optional(DurationJson),
  retryAfter: Schema.optional(DurationJson)
})

/** The Realtime endpoint's plan goes by this name beside the HTTP routes. */
export const realtimeRoute = "realtime"

/** Every name a plan can be set for, as the messages list them. */
const planRoutes = [...routeNames, realtimeRoute].join(", ")

export type Plans =
  & { readonly [K in RouteName]?: FaultPlan | undefined }
  & { readonly realtime?: RealtimePlan | undefined }

// A union's failure lists every branch; a step's kind is plain from its keys, so decode with that
// branch alone and say what is wrong with it.
const strict = { onExcessProperty: "error" } as const

const stepKinds: ReadonlyArray<
  readonly [key: string, decode: (input: unknown) => Either.Either<FaultStep, ParseResult.ParseError>]
> = [
  ["midStream", Schema.decodeUnknownEither(MidStreamStep, strict)],
  ["status", Schema.decodeUnknownEither(StatusStep, strict)],
  ["hang", Schema.decodeUnknownEither(HangStep, strict)],
  ["reset", Schema.decodeUnknownEither(ResetStep, strict)],
  ["malformed", Schema.decodeUnknownEither(MalformedStep, strict)],
  ["latency", Schema.decodeUnknownEither(LatencyStep, strict)]
]

/** The first issue only: an optional field's failure also lists its `undefined` branch. */
const issues = (error: ParseResult.ParseError, at: string): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .slice(0, 1)
    .map((issue) => `at ${[at, ...issue.path.map(String)].join(".")}: ${issue.message}`)
    .join("")

/** A step decoded by the kind its keys name (the first of `kinds` it has), or `expected` when none. */
const decodeKind = <A>(
  kinds: ReadonlyArray<readonly [key: string, decode: (input: unknown) => Either.Either<A, ParseResult.ParseError>]>,
  step: unknown,
  at: string,
  expected: string
): Either.Either<A, string> => {
  const kind = Predicate.isRecord(step) ? kinds.find(([key]) => key in step) : undefined
  if (kind === undefined) return Either.left(`at ${at}: expected ${expected}`)
  return Either.mapLeft(kind[1](step), (e) => issues(e, at))
}

const decodeStep = (step: unknown, at: string): Either.Either<FaultStep, string> => {
  if (typeof step === "number") return Either.mapLeft(Schema.decodeUnknownEither(Status)(step), (e) => issues(e, at))
  return decodeKind(stepKinds, step, at, "a status code or an object with one of status, latency, hang, reset, malformed, midStream")
}

/** Every step of a list decoded, or the first one's mistake (named by its place, `at.i`). */
const decodeSteps = <A>(
  plan: ReadonlyArray<unknown>,
  at: string,
  decode: (step: unknown, at: string) => Either.Either<A, string>
): Either.Either<Array<A>, string> => {
  const steps: Array<A> = []
  for (const [i, step] of plan.entries()) {
    const decoded = decode(step, `${at}.${i}`)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    steps.push(decoded.right)
  }
  return Either.right(steps)
}

const decodePlan = (plan: unknown, at: string): Either.Either<FaultPlan, string> => {
  if (Array.isArray(plan)) return decodeSteps(plan, at, decodeStep)
  if (Predicate.isRecord(plan)) return Either.mapLeft(Schema.decodeUnknownEither(FaultMix, strict)(plan), (e) => issues(e, at))
  return Either.left(`at ${at}: expected an array of steps or a mix ({ "seed": 1, "rates": { … } })`)
}

// An upgrade refused with a status below 400 would be no refusal: the client sees no error at all.
const RefusalStatus = Schema.Int.pipe(Schema.between(400, 599))
const EventCount = Schema.Int.pipe(Schema.nonNegative())

const realtimeStepKinds: ReadonlyArray<
  readonly [key: string, decode: (input: unknown) => Either.Either<RealtimeFaultStep, ParseResult.ParseError>]
> = [
  [
    "status",
    Schema.decodeUnknownEither(
      Schema.Struct({ status: RefusalStatus, retryAfter: Schema.optional(DurationJson), code: Schema.optional(Schema.String) }),
      strict
    )
  ],
  ["hang", Schema.decodeUnknownEither(HangStep, strict)],
  ["dropAfter", Schema.decodeUnknownEither(Schema.Struct({ dropAfter: EventCount }), strict)],
  ["stallAfter", Schema.decodeUnknownEither(Schema.Struct({ stallAfter: EventCount }), strict)],
  ["expireAfter", Schema.decodeUnknownEither(Schema.Struct({ expireAfter: EventCount }), strict)],
  [
    "errorAfter",
    Schema.decodeUnknownEither(
      Schema.Struct({ errorAfter: EventCount, code: Schema.optional(Schema.String), message: Schema.optional(Schema.String) }),
      strict
    )
  ]
]

const decodeRealtimeStep = (step: unknown, at: string): Either.Either<RealtimeFaultStep, string> =>
  step === "normal"
    ? Either.right(step)
    : decodeKind(realtimeStepKinds, step, at, `"normal" or an object with one of ${realtimeStepKinds.map(([key]) => key).join(", ")}`)

const decodeRealtimePlan = (plan: unknown, at: string): Either.Either<RealtimePlan, string> => {
  if (!Array.isArray(plan)) return Either.left(`at ${at}: expected an array of steps, one per connection`)
  return decodeSteps(plan, at, decodeRealtimeStep)
}

const parseJson = (text: string): Either.Either<unknown, string> =>
  Either.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) => `not JSON (${messageOf(error)})`
  })

/** Parses plans per route (the `--faults` file); `Left` says what is wrong, naming the place. */
export const parsePlans = (text: string): Either.Either<Plans, string> =>
  Either.flatMap(parseJson(text), (json): Either.Either<Plans, string> => {
    if (!Predicate.isRecord(json)) return Either.left(`expected an object of plans per route (${planRoutes})`)
    const plans: { [K in RouteName]?: FaultPlan } & { realtime?: RealtimePlan } = {}
    for (const [route, plan] of Object.entries(json)) {
      if (route === realtimeRoute) {
        const decoded = decodeRealtimePlan(plan, route)
        if (Either.isLeft(decoded)) return Either.left(decoded.left)
        plans.realtime = decoded.right
        continue
      }
      if (!isRouteName(route)) return Either.left(`at ${route}: no such route; routes: ${planRoutes}`)
      const decoded = decodePlan(plan, route)
      if (Either.isLeft(decoded)) return Either.left(decoded.left)
      plans[route] = decoded.right
    }
    return Either.right(plans)
  })

/** Parses one route's plan. */
export const parsePlan = (text: string): Either.Either<FaultPlan, string> =>
  Either.flatMap(parseJson(text), (json) => decodePlan(json, "plan"))

/** Parses the Realtime endpoint's plan: an array of steps, one per connection. */
export const parseRealtimePlan = (text: string): Either.Either<RealtimePlan, string> =>
  Either.flatMap(parseJson(text), (json) => decodeRealtimePlan(json, "plan"))

const millisOf = (input: Duration.DurationInput | undefined): number | undefined =>
  input === undefined ? undefined : Duration.toMillis(Duration.decode(input))

/** A plan as JSON (durations in milliseconds), e.g. for `GET /__sandbox/plans`. */
export const planToJson = (plan: FaultPlan): unknown =>
  "seed" in plan
    ? { ...plan, latency: millisOf(plan.latency), retryAfter: millisOf(plan.retryAfter) }
    : plan.map((step) =>
      typeof step === "number" || !("latency" in step || "retryAfter" in step)
        ? step
        : {
          ...step,
          latency: millisOf(step.latency),
          ...("retryAfter" in step ? { retryAfter: millisOf(step.retryAfter) } : {})
        }
    )

/** A Realtime plan as JSON (`retryAfter` in milliseconds). */
export const realtimePlanToJson = (plan: RealtimePlan): unknown =>
  plan.map((step) =>
    typeof step === "object" && "status" in step && step.retryAfter !== undefined
      ? { ...step, retryAfter: millisOf(step.retryAfter) }
      : step
  )

// ---------------------------------------------------------------------------------------------
// The admin API
// ---------------------------------------------------------------------------------------------

/** What the admin API drives: the sandbox's own controls. */
export interface Control {
  readonly setPlan: (route: RouteName, plan: FaultPlan) => Effect.Effect<void>
  readonly clearPlan: (route: RouteName) => Effect.Effect<void>
  /** Replaces the Realtime endpoint's plan (`[]`: every connection normal). */
  readonly setRealtimePlan: (plan: RealtimePlan) => Effect.Effect<void>
  /** Every route back to normal, the Realtime endpoint included. */
  readonly clearPlans: Effect.Effect<void>
  /** What is left of each route's plan, as JSON. */
  readonly plans: Effect.Effect<{ readonly [route: string]: unknown }>
  readonly requests: (route: string | undefined) => Effect.Effect<ReadonlyArray<unknown>>
  readonly events: Effect.Effect<unknown>
  readonly reset: Effect.Effect<void>
}

export const prefix = "/__sandbox"

/** Admin bodies are small JSON plans. */
const maxAdminBodyBytes = 1024 * 1024

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })
const problem = (status: number, error: string) => json({ error }, status)

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
export const isLoopback = (address: string): boolean =>
  /^(?:::ffff:)?127\.\d+\.\d+\.\d+$/.test(address) || address === "::1"

const admin = <E, R>(
  handler: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Option.match(request.remoteAddress, {
      onSome: (address) => isLoopback(address),
      onNone: () => false
    })
      ? handler(request).pipe(
        answeringDefects(
          request.method,
          new URL(request.url, "http://sandbox.invalid").pathname,
          () => problem(500, "the sandbox failed to answer; its log says why")
        )
      )
      : Effect.succeed(problem(403, "the sandbox admin API answers loopback clients only")))

const withBody = <A>(
  request: HttpServerRequest.HttpServerRequest,
  parse: (text: string) => Either.Either<A, string>,
  use: (value: A) => Effect.Effect<void>
) =>
  Effect.flatMap(readBody(NodeHttpServerRequest.toIncomingMessage(request), maxAdminBodyBytes), (read) => {
    if (read._tag === "TooLarge") return Effect.succeed(problem(413, `the body is over ${maxAdminBodyBytes} bytes`))
    return Either.match(parse(read.text), {
      onLeft: (reason) => Effect.succeed(problem(400, `invalid fault plan: ${reason}`)),
      onRight: (value) => Effect.as(use(value), HttpServerResponse.empty({ status: 204 }))
    })
  })

const routeParam = Effect.map(HttpRouter.params, (params) => params["route"] ?? "")

const unknownRoute = (route: string) =>
  problem(404, `no fault-plan route "${route}"; routes: ${planRoutes}`)

/** The admin routes, added to the sandbox's router. */
export const routes = (control: Control) => <E, R>(router: HttpRouter.HttpRouter<E, R>) =>
  router.pipe(
    HttpRouter.get(`${prefix}/plans`, admin(() => Effect.map(control.plans, (plans) => json(plans)))),
    HttpRouter.post(
      `${prefix}/plans`,
      admin((request) =>
        withBody(request, parsePlans, (plans) =>
          Effect.forEach(
            [
              ...routeNames.flatMap((route) => {
                const plan = plans[route]
                return plan === undefined ? [] : [control.setPlan(route, plan)]
              }),
              ...(plans.realtime === undefined ? [] : [control.setRealtimePlan(plans.realtime)])
            ],
            (set) => set,
            { discard: true }
          ))
      )
    ),
    HttpRouter.del(`${prefix}/plans`, admin(() => Effect.as(control.clearPlans, HttpServerResponse.empty({ status: 204 })))),
    HttpRouter.put(
      `${prefix}/plans/:route`,
      admin((request) =>
        Effect.flatMap(routeParam, (route) =>
          route === realtimeRoute
            ? withBody(request, parseRealtimePlan, control.setRealtimePlan)
            : isRouteName(route)
            ? withBody(request, parsePlan, (plan) => control.setPlan(route, plan))
            : Effect.succeed(unknownRoute(route))
        )
      )
    ),
    HttpRouter.del(
      `${prefix}/plans/:route`,
      admin(() =>
        Effect.flatMap(routeParam, (route) =>
          route === realtimeRoute
            ? Effect.as(control.setRealtimePlan([]), HttpServerResponse.empty({ status: 204 }))
            : isRouteName(route)
            ? Effect.as(control.clearPlan(route), HttpServerResponse.empty({ status: 204 }))
            : Effect.succeed(unknownRoute(route))
        )
      )
    ),
    HttpRouter.get(
      `${prefix}/requests`,
      admin((request) => {
        const route = new URL(request.url, "http://sandbox.invalid").searchParams.get("route") ?? undefined
        return Effect.map(control.requests(route), (requests) => json(requests))
      })
    ),
    HttpRouter.get(`${prefix}/events`, admin(() => Effect.map(control.events, (events) => json(events)))),
    HttpRouter.post(`${prefix}/reset`, admin(() => Effect.as(control.reset, HttpServerResponse.empty({ status: 204 })))),
    HttpRouter.all(`${prefix}/*`, admin((request) => Effect.succeed(problem(404, `no admin route ${request.method} ${new URL(request.url, "http://sandbox.invalid").pathname}`))))
  )
