/**
 * A cheaper `Effect.timeoutFail`.
 *
 * `Effect.timeout` races two forked fibers (the effect and a sleep), ≈ 25–50 µs a call here. On
 * the live clock we start the effect in one fiber that runs immediately (a synchronous effect
 * finishes before we arm anything) and arm one `setTimeout`, cleared when the fiber ends: ≈ 2 µs
 * for a synchronous effect. Under any other clock (`TestClock`) we use `Effect.timeoutFail`, so
 * tests drive time as usual.
 *
 * Semantics match `Effect.timeoutFail`: on timeout the effect is interrupted and we wait for its
 * finalizers before failing; interrupting the caller interrupts the effect.
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

const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/** Node timers cannot wait longer than 2^31 - 1 ms; longer waits never fire. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

const fastTimeout = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  millis: number,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) =>
    Effect.async<A, E | E2>((resume) => {
      const fiber = Runtime.runFork(runtime)(self)
      const done = fiber.unsafePoll()
      if (done !== null) {
        resume(done)
        return
      }
      let timedOut = false
      const handle = millis > MAX_TIMER_MILLIS ? undefined : setTimeout(() => {
        timedOut = true
        fiber.unsafeInterruptAsFork(fiber.id())
      }, millis)
      fiber.addObserver((exit) => {
        if (handle !== undefined) clearTimeout(handle)
        resume(timedOut && Exit.isInterrupted(exit) ? Exit.fail(onTimeout()) : exit)
      })
      return Effect.suspend(() => {
        if (handle !== undefined) clearTimeout(handle)
        return Fiber.interrupt(fiber)
      })
    }))

/** Fails with `onTimeout()` when `self` takes longer than `duration`; `self` is interrupted. */
export const timeoutFail = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.clockWith((clock) =>
    clock === liveClock
      ? fastTimeout(self, Duration.toMillis(duration), onTimeout)
      : Effect.timeoutFail(self, { duration, onTimeout })
  )
