/**
 * Chaos from outside the process: fault plans as JSON (the `--faults FILE` of `big3 sandbox` and
 * the admin API), and the admin API itself, served on the sandbox's own port under
 * `/__sandbox/` to loopback clients only.
 *
 * - `GET /__sandbox/plans`: the plans in force (what is left of each script).
 * - `PUT /__sandbox/plans/{route}`: set one route's plan (body: a plan).
 * - `POST /__sandbox/plans`: set several (body: `{ "<route>": plan, … }`, the `--faults` shape).
 * - `DELETE /__sandbox/plans/{route}`, `DELETE /__sandbox/plans`: back to normal answers.
 * - `GET /__sandbox/requests[?route=gemini]`: the recorded requests (keys redacted), oldest first.
 * - `GET /__sandbox/events`: the stored observability events and their counts.
 * - `POST /__sandbox/reset`: clear plans, recorded requests and stored events.
 *
 * A plan is a JSON array of steps or a seeded mix, as `Sandbox.FaultPlan`; durations are Effect
 * duration strings (`"2 seconds"`, `"45.8 seconds"`) or numbers of milliseconds.
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
import * as Schema from "effect/Schema"
import type { FaultPlan, RouteName } from "./FaultPlan.js"
import { isRouteName, routeNames } from "./FaultPlan.js"
import { readBody } from "./Http.js"

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

const FaultStep = Schema.Union(
  Status,
  Schema.Struct({
    status: Status,
    retryAfter: Schema.optional(DurationJson),
    latency: Schema.optional(DurationJson),
    quota: Schema.optional(Schema.Literal("minute", "day"))
  }),
  Schema.Struct({ latency: DurationJson }),
  Schema.Struct({ hang: Schema.Literal(true) }),
  Schema.Struct({ reset: Schema.Literal(true) }),
  Schema.Struct({ malformed: Schema.Literal(true) }),
  Schema.Struct({
    midStream: Schema.Literal("error", "hang", "reset"),
    after: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
    status: Schema.optional(Status)
  })
)

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

/** One route's plan in JSON: an array of steps, or a seeded mix. */
export const FaultPlanJson = Schema.Union(Schema.Array(FaultStep), FaultMix)

/** Plans per route in JSON (`{ "gemini": [429, 200], "anthropic": { "seed": 1, … } }`). */
export const PlansJson = Schema.Struct({
  gemini: Schema.optional(FaultPlanJson),
  events: Schema.optional(FaultPlanJson),
  eventsBatch: Schema.optional(FaultPlanJson),
  anthropic: Schema.optional(FaultPlanJson)
})
export type Plans = { readonly [K in RouteName]?: FaultPlan | undefined }

const describe = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? "" : `at ${issue.path.map(String).join(".")}: `}${issue.message}`)
    .join("; ")

const parseWith = <A, I>(schema: Schema.Schema<A, I>, text: string): Either.Either<A, string> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(`not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  // Unknown keys are mistakes (a misspelt route or step field), not something to ignore.
  return Either.mapLeft(Schema.decodeUnknownEither(schema, { onExcessProperty: "error", errors: "all" })(json), describe)
}

/** Parses plans per route (the `--faults` file); `Left` says what is wrong, naming the place. */
export const parsePlans = (text: string): Either.Either<Plans, string> => parseWith(PlansJson, text)

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

/** Parses one route's plan. */
export const parsePlan = (text: string): Either.Either<FaultPlan, string> => parseWith(FaultPlanJson, text)

// ---------------------------------------------------------------------------------------------
// The admin API
// ---------------------------------------------------------------------------------------------

/** What the admin API drives: the sandbox's own controls. */
export interface Control {
  readonly setPlan: (route: RouteName, plan: FaultPlan) => Effect.Effect<void>
  readonly clearPlan: (route: RouteName) => Effect.Effect<void>
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
      ? handler(request)
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
  problem(404, `no fault-plan route "${route}"; routes: ${routeNames.join(", ")}`)

/** The admin routes, added to the sandbox's router. */
export const routes = (control: Control) => <E, R>(router: HttpRouter.HttpRouter<E, R>) =>
  router.pipe(
    HttpRouter.get(`${prefix}/plans`, admin(() => Effect.map(control.plans, (plans) => json(plans)))),
    HttpRouter.post(
      `${prefix}/plans`,
      admin((request) =>
        withBody(request, parsePlans, (plans) =>
          Effect.forEach(
            routeNames.flatMap((route) => {
              const plan = plans[route]
              return plan === undefined ? [] : [control.setPlan(route, plan)]
            }),
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
          isRouteName(route)
            ? withBody(request, parsePlan, (plan) => control.setPlan(route, plan))
            : Effect.succeed(unknownRoute(route))
        )
      )
    ),
    HttpRouter.del(
      `${prefix}/plans/:route`,
      admin(() =>
        Effect.flatMap(routeParam, (route) =>
          isRouteName(route)
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
