/**
 * One attempt with adaptation around it: paced by the service's token bucket (after a 429), its
 * timeout the operation's learned one, its latency and outcome fed back to both.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { AdaptiveTimeout, Pacer } from "../adaptive/Handles.js"
import { OperationTimeout, RateLimited } from "../Errors.js"
import { onOutcome } from "./attempt.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Runs `run(timeout)` with the learned timeout and the pacer of a pipeline. */
export const adaptedAttempt = <A, E, R>(
  run: (timeout: Duration.Duration | undefined) => Effect.Effect<A, E, R>,
  clock: Clock.Clock,
  operation: string,
  configured: Duration.Duration | undefined,
  learned: AdaptiveTimeout | undefined,
  pacer: Pacer | undefined
): Effect.Effect<A, E, R> => {
  const start = (): Effect.Effect<A, E, R> => {
    const startedAt = clock.unsafeCurrentTimeMillis()
    const timeout = learned === undefined ? configured : learned.timeout(startedAt)
    return onOutcome(run(timeout), (exit) => {
      const endedAt = clock.unsafeCurrentTimeMillis()
      const error = failureOf(exit)
      pacer?.settle(endedAt, error instanceof RateLimited)
      if (learned === undefined || timeout === undefined) return exit
      const outcome = Exit.isSuccess(exit)
        ? "success"
        : error instanceof OperationTimeout && error.operation === operation && Duration.equals(error.timeout, timeout)
        ? "timeout"
        : "failure"
      const announcement = learned.settle(endedAt, endedAt - startedAt, outcome, timeout)
      if (announcement === undefined) return exit
      const log = announcement.warning ? Effect.logWarning(announcement.message) : Effect.logInfo(announcement.message)
      return Effect.zipRight(log, exit)
    })
  }
  if (pacer === undefined) return start()
  // Wait for a send token, asking again after each wait: the paced rate may grow meanwhile.
  const paced: Effect.Effect<A, E, R> = Effect.suspend(() => {
    const wait = pacer.acquire(clock.unsafeCurrentTimeMillis())
    return wait > 0 ? Effect.zipRight(Effect.sleep(Duration.millis(wait)), paced) : start()
  })
  return paced
}
