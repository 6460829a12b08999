/**
 * One attempt of a protected call: circuit breaker admission, a timeout, and the breaker's
 * bookkeeping of the outcome, in a single step.
 *
 * `Effect.timeout` races two forked fibers (the effect and a sleep), ≈ 25–50 µs a call here, and
 * a breaker built from `Effect.onExit` adds ≈ 1 µs more. On the live clock we start the effect
 * in one fiber that runs at once (a synchronous effect has finished before anything is armed),
 * arm one `setTimeout` that is cleared when the fiber ends, and report the outcome to the
 * breaker from the fiber's observer: ≈ 2–3 µs for a call that succeeds. Under any other clock
 * (`TestClock`) we compose `Effect.timeoutFail` and `CircuitBreaker.guard`, so tests drive time
 * as usual and both paths share the breaker's state machine.
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
import * as Runtime from "effect/Runtime"
import type { Breaker } from "../CircuitBreaker.js"
import { guard, logTransitions } from "../CircuitBreaker.js"
import type { CircuitOpen } from "../Errors.js"

const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/** Node timers cannot wait longer than 2^31 - 1 ms; longer waits never fire. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * Resumes the caller with `exit`, logging any breaker state change first.
 *
 * The attempt's FiberRef changes are not joined back into the caller (`fiber.inheritAll` costs
 * ≈ 4.5 µs, more than the rest of the pipeline): context, spans, log annotations and levels flow
 * into the attempt, not out of it, as with a forked fiber that is awaited rather than joined.
 */
const complete = <A, E>(breaker: Breaker | undefined, exit: Exit.Exit<A, E>): Effect.Effect<A, E> =>
  breaker === undefined || breaker.transitions.length === 0 ? exit : Effect.zipRight(logTransitions(breaker), exit)

const liveTimeout = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
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
        breaker?.onExit(ticket, Date.now(), done)
        resume(complete(breaker, done))
        return
      }
      let timedOut = false
      const handle = millis > MAX_TIMER_MILLIS ? undefined : setTimeout(() => {
        timedOut = true
        fiber.unsafeInterruptAsFork(fiber.id())
      }, millis)
      fiber.addObserver((exit) => {
        if (handle !== undefined) clearTimeout(handle)
        const outcome: Exit.Exit<A, E | E2> = timedOut && Exit.isInterrupted(exit) ? Exit.fail(onTimeout()) : exit
        breaker?.onExit(ticket, Date.now(), outcome)
        resume(complete(breaker, outcome))
      })
      return Effect.suspend(() => {
        if (handle !== undefined) clearTimeout(handle)
        return Fiber.interrupt(fiber)
      })
    }))

/**
 * Runs one attempt of `self`: refused with `CircuitOpen` while `breaker` is open, failed with
 * `onTimeout()` after `duration` (interrupting `self`), and its outcome reported to `breaker`.
 */
export const attempt = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2,
  breaker?: Breaker | undefined
): Effect.Effect<A, E | E2 | CircuitOpen, R> =>
  Effect.clockWith((clock): Effect.Effect<A, E | E2 | CircuitOpen, R> => {
    if (clock !== liveClock) {
      const timed = Effect.timeoutFail(self, { duration, onTimeout })
      return breaker === undefined ? timed : guard(breaker)(timed)
    }
    const millis = Duration.toMillis(duration)
    if (breaker === undefined) return liveTimeout(self, millis, onTimeout, undefined, 0)
    return Effect.suspend((): Effect.Effect<A, E | E2 | CircuitOpen, R> => {
      const admitted = breaker.tryAcquire(Date.now())
      return typeof admitted === "number"
        ? liveTimeout(self, millis, onTimeout, breaker, admitted)
        : Effect.zipRight(logTransitions(breaker), Exit.fail(admitted))
    })
  })

/** Fails with `onTimeout()` when `self` takes longer than `duration`; `self` is interrupted. */
export const timeoutFail = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.clockWith((clock) =>
    clock === liveClock
      ? liveTimeout(self, Duration.toMillis(duration), onTimeout, undefined, 0)
      : Effect.timeoutFail(self, { duration, onTimeout })
  )
