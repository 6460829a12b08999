/**
 * How the sandbox serves one request on a route: read the body (capped at the upstream's limit),
 * consult the route's fault plan, answer (or fail to answer) as the plan says, and record it.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Action, RouteName } from "./FaultPlan.js"
import { kindOf, normal } from "./FaultPlan.js"
import type { Answer, StreamFault, Upstream } from "./Http.js"
import { answeringDefects, closingConnection, readBody, readIncoming, redactHeaders, redactQuery } from "./Http.js"
import type { Outcome, RecordedRequest, RequestLog } from "./RequestLog.js"

/** Every answer's request, minus its body: the body is kept as text and parsed when read. */
export type Recorded = Omit<RecordedRequest, "body">

/** Fault-plan steps that a non-streamed request gets whole. */
const wholeFault = (action: Extract<Action, { readonly _tag: "MidStream" }>, route: RouteName): Action => {
  switch (action.kind) {
    case "hang":
      return { _tag: "Hang" }
    case "reset":
    case "end":
      return { _tag: "Reset" }
    case "error":
      return {
        _tag: "Status",
        status: action.status ?? (route === "anthropic" ? 529 : 503),
        retryAfter: Option.none(),
        latency: Option.none()
      }
  }
}

/** What serving a route needs from the sandbox. */
export interface RouteDeps {
  /** Overrides every upstream's body limit, in bytes. */
  readonly maxRequestBytes: number | undefined
  readonly recordRequests: boolean
  readonly log: RequestLog<Recorded>
  /** Consumes one step of the route's plan. */
  readonly takeAction: (route: RouteName) => Effect.Effect<Action>
  /** The next 1-based arrival number. */
  readonly nextSequence: () => number
}

/** The handler maker of a sandbox: `handle(route, upstream, answer)` is one route's handler. */
export const makeHandle = (deps: RouteDeps) => {
  /**
   * Serves one route: `answer` is its normal answer, `upstream` writes its faults in the right
   * format; `route` names its fault plan ("other": none).
   */
  const handle = (route: RouteName | "other", upstream: Upstream, answer: Answer) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpRouter.params
      const time = yield* Clock.currentTimeMillis
      const number = deps.nextSequence()
      const message = NodeHttpServerRequest.toIncomingMessage(request)
      const limit = deps.maxRequestBytes ?? upstream.maxRequestBytes
      const body = yield* readBody(message, limit)
      const text = body._tag === "Body" ? body.text : ""
      const incoming = readIncoming(request, params, text, time, number)
      const answered = (fault?: StreamFault) =>
        answer(incoming, fault).pipe(
          answeringDefects(incoming.method, incoming.path, () => upstream.error(incoming, 500, Option.none()))
        )
      const record = (action: Action, outcome: Outcome) =>
        Effect.sync(() => {
          if (!deps.recordRequests) return
          deps.log.push({
            sequence: number,
            route,
            method: incoming.method,
            path: incoming.path,
            query: redactQuery(incoming.query),
            time,
            headers: redactHeaders(incoming.headers),
            bodyBytes: body._tag === "Body" ? Buffer.byteLength(text) : body.bytes,
            fault: kindOf(action),
            outcome
          }, text)
        })
      if (body._tag === "TooLarge") {
        // Refused before any plan step, as the real front ends refuse it; the socket closes after the answer.
        const response = closingConnection(upstream.tooLarge(incoming, limit))
        yield* record(normal, response.status)
        return response
      }
      const planned = route === "other" ? normal : yield* deps.takeAction(route)
      const action = planned._tag === "MidStream" && route !== "other" && !upstream.isStream(incoming)
        ? wholeFault(planned, route)
        : planned
      switch (action._tag) {
        case "Hang": {
          yield* record(planned, "hang")
          // Released by the platform: a closed connection interrupts this fiber.
          return yield* Effect.never
        }
        case "Reset": {
          yield* record(planned, "reset")
          yield* Effect.sync(() => message.socket.resetAndDestroy())
          return yield* Effect.never
        }
        case "Malformed": {
          yield* record(planned, "malformed")
          return upstream.malformed(incoming)
        }
        case "Status": {
          const response = upstream.error(incoming, action.status, action.retryAfter, action.quota)
          yield* record(planned, response.status)
          if (Option.isSome(action.latency)) yield* Effect.sleep(action.latency.value)
          return response
        }
        case "MidStream": {
          const fault: StreamFault = {
            kind: action.kind,
            after: action.after,
            status: action.status,
            // What was written reaches the client before the connection goes.
            dropConnection: Effect.async<void>((resume) => {
              message.socket.write("", () => {
                message.socket.destroy()
                resume(Effect.void)
              })
            })
          }
          const response = yield* answered(fault)
          yield* record(planned, response.status)
          return response
        }
        case "Normal": {
          const response = yield* answered()
          yield* record(planned, response.status)
          if (Option.isSome(action.latency)) yield* Effect.sleep(action.latency.value)
          return response
        }
      }
    })
  return handle
}
