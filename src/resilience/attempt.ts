/**
 * One attempt of a protected call: circuit breaker admission, a timeout, and the breaker's
 * bookkeeping of the outcome, in a single step, on one code path for every `Clock`.
 *
 * `Effect.timeout` races two forked fibers (the effect and a sleep), ≈ 50–85 µs a call here. We
 * start the effect in one fiber that runs at once (a synchronous effect has finished before
 * anything is armed), arm one timer that is disarmed when the fiber ends, and report the outcome
 * to the breaker from the fiber's observer. The timer is the only part that depends on the clock:
 * on the live clock a `setTimeout`; on any other (`TestClock`) a sleep on that clock. So the tests
 * that drive time with `TestClock` run the production path, state machine and all.
 *
 * As with `Effect.timeoutFail`, on timeout the effect is interrupted and its finalizers run before
 * the attempt fails, and interrupting the caller interrupts the effect. One difference: FiberRef
 * changes made inside the attempt stay there (see `complete`).
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import type { Breaker } from "../CircuitBreaker.js"
import { logTransitions } from "../CircuitBreaker.js"
import type { CircuitOpen } from "../Errors.js"

const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/** Node timers cannot wait longer than 2^31 - 1 ms; longer waits never fire. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

const disarmed = (): void => {}

/**
 * Calls `fire` after `millis` on `clock`, unless the returned function disarms it first. On the
 * live clock a plain timer; on another clock a sleep on that clock, in a fiber of `runtime`.
 */
const arm = <R>(clock: Clock.Clock, runtime: Runtime.Runtime<R>, millis: number, fire: () => void): () => void => {
  if (clock === liveClock) {
    if (millis > MAX_TIMER_MILLIS) return disarmed
    const handle = setTimeout(fire, millis)
    return () => clearTimeout(handle)
  }
  const sleeper = Runtime.runFork(runtime)(clock.sleep(Duration.millis(millis)))
  sleeper.addObserver((exit) => {
    if (Exit.isSuccess(exit)) fire()
  })
  return () => sleeper.unsafeInterruptAsFork(FiberId.none)
}

/**
 * Resumes the caller with `exit`, logging any breaker state change first.
 *
 * The attempt's FiberRef changes are not joined back into the caller (`fiber.inheritAll` costs
 * ≈ 4.5 µs, more than the rest of the pipeline): context, spans, log annotations and levels flow
 * into the attempt, not out of it, as with a forked fiber that is awaited rather than joined.
 */
const complete = <A, E>(breaker: Breaker | undefined, exit: Exit.Exit<A, E>): Effect.Effect<A, E> =>
  breaker === undefined || breaker.transitions.length === 0 ? exit : Effect.zipRight(logTransitions(breaker), exit)

const timed = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => E2,
  breaker: Breaker | undefined,
  ticket: number
): Effect.Effect<A, E | E2, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) =>
    Effect.async<A, E | E2>((resume) => {
      const fiber = Runtime.runFork(runtime)(self)
      const done = fiber.unsafePoll()
      if (done !== null) {
        breaker?.onExit(ticket, clock.unsafeCurrentTimeMillis(), done)
        resume(complete(breaker, done))
        return
      }
      let timedOut = false
      const disarm = arm(clock, runtime, millis, () => {
        timedOut = true
        fiber.unsafeInterruptAsFork(fiber.id())
      })
      fiber.addObserver((exit) => {
        disarm()
        const outcome: Exit.Exit<A, E | E2> = timedOut && Exit.isInterrupted(exit) ? Exit.fail(onTimeout()) : exit
        breaker?.onExit(ticket, clock.unsafeCurrentTimeMillis(), outcome)
        resume(complete(breaker, outcome))
      })
      return Effect.suspend(() => {
        disarm()
        return Fiber.interrupt(fiber)
      })
    }))

/** Runs `self` through `breaker` without a timeout: no fiber of its own. */
const guarded = <A, E, R>(self: Effect.Effect<A, E, R>, clock: Clock.Clock, breaker: Breaker, ticket: number) =>
  Effect.onExit(self, (exit) => {
    breaker.onExit(ticket, clock.unsafeCurrentTimeMillis(), exit)
    return logTransitions(breaker)
  })

/**
 * Runs one attempt of `self`: refused with `CircuitOpen` while `breaker` is open, failed with
 * `onTimeout()` after `timeout` (interrupting `self`), and its outcome reported to `breaker`.
 * Without a `timeout`, `self` runs in the caller's fiber.
 */
export const attempt = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  timeout: Duration.Duration | undefined,
  onTimeout: () => E2,
  breaker?: Breaker | undefined
): Effect.Effect<A, E | E2 | CircuitOpen, R> =>
  Effect.clockWith((clock): Effect.Effect<A, E | E2 | CircuitOpen, R> => {
    if (breaker === undefined) {
      return timeout === undefined ? self : timed(self, clock, Duration.toMillis(timeout), onTimeout, undefined, 0)
    }
    return Effect.suspend((): Effect.Effect<A, E | E2 | CircuitOpen, R> => {
      const admitted = breaker.tryAcquire(clock.unsafeCurrentTimeMillis())
      if (typeof admitted !== "number") return Effect.zipRight(logTransitions(breaker), Exit.fail(admitted))
      return timeout === undefined
        ? guarded(self, clock, breaker, admitted)
        : timed(self, clock, Duration.toMillis(timeout), onTimeout, breaker, admitted)
    })
  })

/** Fails with `onTimeout()` when `self` takes longer than `duration`; `self` is interrupted. */
export const timeoutFail = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.clockWith((clock) => timed(self, clock, Duration.toMillis(duration), onTimeout, undefined, 0))
