/**
 * Fault plans of the sandbox: what each request on a route gets instead of (or before) its normal
 * answer. A plan is either a scripted sequence of steps, consumed one per request and then falling
 * back to normal answers, or a seeded random mix that is the same for the same seed.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * The routes a fault plan can target: `POST …:generateContent`, `POST /events`,
 * `POST /events/batch` (extended mode only) and `POST /v1/messages`.
 */
export type RouteName = "gemini" | "events" | "eventsBatch" | "anthropic"

/** Every {@link RouteName}, in a fixed order. */
export const routeNames: ReadonlyArray<RouteName> = ["gemini", "events", "eventsBatch", "anthropic"]

const routeNameSet: ReadonlySet<string> = new Set(routeNames)

/** Whether `name` is a {@link RouteName}. */
export const isRouteName = (name: string): name is RouteName => routeNameSet.has(name)

/**
 * One scripted step.
 *
 * - `503` (a bare number) or `{ status: 503 }`: answer with that status and the upstream's real error
 *   body. `retryAfter` adds the upstream's retry hint (`Retry-After` header in whole seconds, rounded
 *   up; for Gemini also a `google.rpc.RetryInfo` detail). A status below 400 (e.g. `{ status: 200 }`)
 *   is an explicit normal answer. `latency` delays the answer.
 * - `{ latency: "2 seconds" }`: process the request normally, then wait before answering (so a
 *   client that gives up during the wait has still been served: an acknowledgement lost in transit).
 * - `{ hang: true }`: never answer; released when the client disconnects or the sandbox stops.
 * - `{ reset: true }`: reset the connection without answering.
 * - `{ malformed: true }`: 200 with a JSON content type and a body that is not valid JSON.
 * - `{ status: 429, quota: "day" }` (Gemini): the 429's `google.rpc.QuotaFailure` names a per-day
 *   quota instead of the default per-minute one.
 * - `{ midStream: "error" | "hang" | "reset" | "end", after?, status? }`: a streamed answer (Gemini
 *   `streamGenerateContent`, Anthropic `"stream": true`) starts normally (200), sends `after`
 *   events (default 1), then sends the upstream's in-stream error event for `status` (default:
 *   Anthropic 529 `overloaded_error`, Gemini 503 `UNAVAILABLE`), stops sending without closing,
 *   drops the connection, or ends the body cleanly there (as a proxy that cuts a stream does: no
 *   transport error, only the missing last events show it). A request that is not streamed gets
 *   the same fault whole: the error status, a hang, or a reset (for `end` too).
 */
export type FaultStep =
  | number
  | {
    readonly status: number
    readonly retryAfter?: Duration.DurationInput | undefined
    readonly latency?: Duration.DurationInput | undefined
    readonly quota?: QuotaWindow | undefined
  }
  | { readonly latency: Duration.DurationInput }
  | { readonly hang: true }
  | { readonly reset: true }
  | { readonly malformed: true }
  | {
    readonly midStream: MidStreamKind
    readonly after?: number | undefined
    readonly status?: number | undefined
  }

/** Which Gemini quota a 429 names: per minute (worth waiting for) or per day (not). */
export type QuotaWindow = "minute" | "day"

/** What a mid-stream fault does after its first events. */
export type MidStreamKind = "error" | "hang" | "reset" | "end"

/**
 * A seeded random mix: each request draws one number from a mulberry32 generator seeded with
 * `seed` (one generator per route, restarted by `setPlan`) and falls into the first matching rate,
 * in the order `rateLimited`, `serverError`, `latency`, `hang`, `reset`, `malformed`; the rest
 * are answered normally. Rates are probabilities in [0, 1]; if they add up to more than 1 the later
 * ones are cut short.
 *
 * - `rateLimited`: 429 with a `retryAfter` hint (default 1 second).
 * - `serverError`: 503 (Gemini `UNAVAILABLE`, observability `{"error":…}`), for Anthropic 529
 *   `overloaded_error`.
 * - `latency`: a normal answer after `latency` (default 50 millis).
 */
export interface FaultMix {
  readonly seed: number
  readonly rates: {
    readonly rateLimited?: number | undefined
    readonly serverError?: number | undefined
    readonly latency?: number | undefined
    readonly hang?: number | undefined
    readonly reset?: number | undefined
    readonly malformed?: number | undefined
  }
  readonly latency?: Duration.DurationInput | undefined
  readonly retryAfter?: Duration.DurationInput | undefined
}

/** A scripted sequence of steps, or a seeded random mix. */
export type FaultPlan = ReadonlyArray<FaultStep> | FaultMix

/** What kind of fault a request got; `"none"` for a normal answer. */
export type FaultKind = "none" | "status" | "latency" | "hang" | "reset" | "malformed" | "midStream"

/** What the sandbox does with one request, once the plan has been consulted. */
export type Action =
  | { readonly _tag: "Normal"; readonly latency: Option.Option<Duration.Duration> }
  | {
    readonly _tag: "Status"
    readonly status: number
    readonly retryAfter: Option.Option<Duration.Duration>
    readonly latency: Option.Option<Duration.Duration>
    readonly quota?: QuotaWindow | undefined
  }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Malformed" }
  | {
    readonly _tag: "MidStream"
    readonly kind: MidStreamKind
    readonly after: number
    /** `undefined`: the upstream's usual overload status. */
    readonly status: number | undefined
  }

/** A normal answer, right away. */
export const normal: Action = { _tag: "Normal", latency: Option.none() }

/** The fault kind to record for an action. */
export const kindOf = (action: Action): FaultKind => {
  switch (action._tag) {
    case "Normal":
      return Option.isSome(action.latency) ? "latency" : "none"
    case "Status":
      return "status"
    case "Hang":
      return "hang"
    case "Reset":
      return "reset"
    case "Malformed":
      return "malformed"
    case "MidStream":
      return "midStream"
  }
}

const optionalDuration = (input: Duration.DurationInput | undefined): Option.Option<Duration.Duration> =>
  input === undefined ? Option.none() : Option.some(Duration.decode(input))

/** Turns a scripted step into an action. */
export const fromStep = (step: FaultStep): Action => {
  if (typeof step === "number") {
    return step < 400 ? normal : { _tag: "Status", status: step, retryAfter: Option.none(), latency: Option.none() }
  }
  if ("midStream" in step) {
    return { _tag: "MidStream", kind: step.midStream, after: Math.max(0, Math.floor(step.after ?? 1)), status: step.status }
  }
  if ("status" in step) {
    const latency = optionalDuration(step.latency)
    return step.status < 400
      ? { _tag: "Normal", latency }
      : {
        _tag: "Status",
        status: step.status,
        retryAfter: optionalDuration(step.retryAfter),
        latency,
        ...(step.quota === undefined ? {} : { quota: step.quota })
      }
  }

  if ("hang" in step) return { _tag: "Hang" }
  if ("reset" in step) return { _tag: "Reset" }
  if ("malformed" in step) return { _tag: "Malformed" }
  return { _tag: "Normal", latency: Option.some(Duration.decode(step.latency)) }
}

/**
 * mulberry32: a tiny, fast 32-bit PRNG. Returns a number in [0, 1) and the next state, so the
 * state can live in a `Ref` and every draw stays a pure function of the seed.
 */
export const mulberry32 = (state: number): readonly [value: number, next: number] => {
  const next = (state + 0x6d2b79f5) | 0
  let t = Math.imul(next ^ (next >>> 15), 1 | next)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, next]
}

/** The live state of one route's plan. */
export type PlanState =
  | { readonly _tag: "Script"; readonly steps: ReadonlyArray<FaultStep>; readonly index: number }
  | { readonly _tag: "Mix"; readonly mix: FaultMix; readonly random: number }

/** The state a freshly set plan starts from. */
export const initialState = (plan: FaultPlan): PlanState =>
  "seed" in plan ? { _tag: "Mix", mix: plan, random: plan.seed | 0 } : { _tag: "Script", steps: plan, index: 0 }

/** The route's server-error status under a random mix. */
const serverErrorStatus = (route: RouteName): number => route === "anthropic" ? 529 : 503

/**
 * Consumes one request's worth of plan: the action for this request and the state for the next
 * one (`Option.none()` once a script is exhausted).
 */
export const nextAction = (
  route: RouteName,
  state: PlanState
): readonly [Action, Option.Option<PlanState>] => {
  if (state._tag === "Script") {
    const step = state.steps[state.index]
    if (step === undefined) return [normal, Option.none()]
    const rest = state.index + 1 < state.steps.length
      ? Option.some<PlanState>({ ...state, index: state.index + 1 })
      : Option.none()
    return [fromStep(step), rest]
  }
  const [draw, random] = mulberry32(state.random)
  const rest = Option.some<PlanState>({ ...state, random })
  const { mix } = state
  const rates = mix.rates
  let threshold = 0
  const hit = (rate: number | undefined): boolean => {
    threshold += Math.max(0, rate ?? 0)
    return draw < threshold
  }
  if (hit(rates.rateLimited)) {
    return [{
      _tag: "Status",
      status: 429,
      retryAfter: Option.some(Duration.decode(mix.retryAfter ?? "1 second")),
      latency: Option.none()
    }, rest]
  }
  if (hit(rates.serverError)) {
    return [{
      _tag: "Status",
      status: serverErrorStatus(route),
      retryAfter: Option.none(),
      latency: Option.none()
    }, rest]
  }
  if (hit(rates.latency)) {
    return [{ _tag: "Normal", latency: Option.some(Duration.decode(mix.latency ?? "50 millis")) }, rest]
  }
  if (hit(rates.hang)) return [{ _tag: "Hang" }, rest]
  if (hit(rates.reset)) return [{ _tag: "Reset" }, rest]
  if (hit(rates.malformed)) return [{ _tag: "Malformed" }, rest]
  return [normal, rest]
}

/** Whole seconds for a `Retry-After` header, rounded up (so a positive hint is at least 1). */
export const retryAfterSeconds = (retryAfter: Duration.Duration): number =>
  Math.max(0, Math.ceil(Duration.toMillis(retryAfter) / 1000))
