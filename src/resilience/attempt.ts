/**
 * One attempt of a protected call: circuit breaker admission, a timeout, and the breaker's
 * bookkeeping of the outcome, in a single step, on one code path for every `Clock`.
 *
 * `Effect.timeout` races two forked fibers (the effect and a sleep): ≈ 50–85 µs a call here, and
 * even one forked fiber per attempt costs ≈ 10–20 µs for an effect that suspends. So an attempt
 * runs in the caller's own fiber, with one timer: when it fires, the timer interrupts the caller
 * fiber with an interruptor of its own; the attempt's handler, in an uninterruptible region, sees
 * that interruption, takes it back out of the fiber's interrupted cause (`FiberRef.interruptedCause`)
 * and fails the attempt with `onTimeout()`. The interrupted effect's finalizers have run, its
 * `Effect.async` cancellers too (an HTTP request is aborted), exactly as with `Effect.timeout`.
 *
 * An interruption reaches a fiber's children as well. So when the caller has children (fibers it
 * forked and has not joined, which must not be cut by the attempt's timer), the attempt runs in a
 * fiber of its own instead, joined back into the caller when it ends.
 *
 * The timer is the only part that depends on the clock: on the live clock a `setTimeout`; on any
 * other (`TestClock`) a sleep on that clock. Tests that drive time with `TestClock` run the
 * production path, state machine and all.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Runtime from "effect/Runtime"
import type { Breaker } from "../CircuitBreaker.js"
import { logTransitions } from "../CircuitBreaker.js"
import type { CircuitOpen } from "../Errors.js"
import { setLongTimeout } from "../internal/timer.js"

const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/**
 * Calls `fire` after `millis` on `clock`, unless the returned function disarms it first. On the
 * live clock a plain timer; on another clock a sleep on that clock, in a fiber of its own.
 */
const arm = (clock: Clock.Clock, millis: number, fire: () => void): () => void => {
  if (clock === liveClock) {
    // Armed once the attempt has suspended (a microtask later): an attempt that finishes at once
    // costs no timer at all. A timer longer than Node can hold is chained, not cut to 1 ms.
    let cancel: (() => void) | undefined
    let cancelled = false
    queueMicrotask(() => {
      if (!cancelled) cancel = setLongTimeout(fire, millis)
    })
    return () => {
      cancelled = true
      cancel?.()
    }
  }
  const sleeper = Runtime.runFork(Runtime.defaultRuntime)(clock.sleep(Duration.millis(millis)))
  sleeper.addObserver((exit) => {
    if (Exit.isSuccess(exit)) fire()
  })
  return () => sleeper.unsafeInterruptAsFork(FiberId.none)
}

/** What Effect 3's fiber runtime offers beyond the `RuntimeFiber` interface: its live children. */
interface WithChildren {
  getChildren(): ReadonlySet<unknown>
}
const exposesChildren = (fiber: object): fiber is WithChildren =>
  "getChildren" in fiber && typeof fiber.getChildren === "function"

/**
 * True when interrupting `fiber` reaches no fiber but itself. A fiber that does not say counts as
 * having children: the attempt then takes the forked path, which is always correct.
 */
const childless = (fiber: object): boolean => exposesChildren(fiber) && fiber.getChildren().size === 0

/** `cause` (a fiber's interruptions) without the interruption by `id`. */
const withoutInterruptor = (cause: Cause.Cause<never>, id: FiberId.FiberId): Cause.Cause<never> => {
  const interruptors = Cause.interruptors(cause)
  if (!HashSet.has(interruptors, id)) return cause
  let rest: Cause.Cause<never> = Cause.empty
  for (const other of interruptors) {
    if (!Equal.equals(other, id)) rest = Cause.sequential(rest, Cause.interrupt(other))
  }
  return rest
}

/** Reports the outcome to the breaker and logs any state change. */
const report = <A, E>(
  breaker: Breaker | undefined,
  ticket: number,
  clock: Clock.Clock,
  exit: Exit.Exit<A, E>
): Effect.Effect<A, E> => {
  if (breaker === undefined) return exit
  breaker.onExit(ticket, clock.unsafeCurrentTimeMillis(), exit)
  return breaker.transitions.length === 0 ? exit : Effect.zipRight(logTransitions(breaker), exit)
}

/**
 * The state of one attempt in the caller's fiber. A class rather than closures: an attempt is
 * made per call, and its methods are made once.
 */
class InFiber<A, E, E2> {
  /** Made when the timer fires: an interruptor no one else uses. */
  timer: FiberId.FiberId | undefined = undefined
  ended = false
  disarm: () => void = noop
  constructor(
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown>,
    readonly clock: Clock.Clock,
    readonly onTimeout: () => E2,
    readonly breaker: Breaker | undefined,
    readonly ticket: number
  ) {}

  fire(): void {
    // A sleep on a test clock may end after the attempt did: then there is nothing to cut.
    if (this.ended) return
    this.timer = FiberId.unsafeMake()
    this.fiber.unsafeInterruptAsFork(this.timer)
  }

  /** Takes the timer's interruption back out of the fiber, then ends with the attempt's outcome. */
  end(exit: Exit.Exit<A, E>): Effect.Effect<A, E | E2> {
    this.ended = true
    this.disarm()
    const id = this.timer
    if (id === undefined) return report(this.breaker, this.ticket, this.clock, exit)
    // Our timer's interruption, and no one else's: the attempt timed out.
    const timedOut = exit._tag === "Failure" && Cause.isInterruptedOnly(exit.cause) &&
      HashSet.has(Cause.interruptors(exit.cause), id) && HashSet.size(Cause.interruptors(exit.cause)) === 1
    const outcome = report<A, E | E2>(this.breaker, this.ticket, this.clock, timedOut ? Exit.fail(this.onTimeout()) : exit)
    return Effect.zipRight(FiberRef.update(FiberRef.interruptedCause, (cause) => withoutInterruptor(cause, id)), outcome)
  }
}

const noop = (): void => {}

/**
 * `Effect.flatMap(Effect.exit(self), f)` as one step of the fiber runtime instead of three: it
 * runs for every attempt and every call.
 */
export const onOutcome = <A, E, R, B, E2, R2>(
  self: Effect.Effect<A, E, R>,
  f: (exit: Exit.Exit<A, E>) => Effect.Effect<B, E2, R2>
): Effect.Effect<B, E2, R | R2> =>
  Effect.matchCauseEffect(self, {
    onFailure: (cause) => f(Exit.failCause(cause)),
    onSuccess: (value) => f(Exit.succeed(value))
  })

/** The attempt in the caller's fiber: the timer interrupts the caller, the handler takes it back. */
const inFiber = <A, E, R, E2>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  self: Effect.Effect<A, E, R>,
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => E2,
  breaker: Breaker | undefined,
  ticket: number
): Effect.Effect<A, E | E2, R> => {
  const state = new InFiber<A, E, E2>(fiber, clock, onTimeout, breaker, ticket)
  state.disarm = arm(clock, millis, () => state.fire())
  return Effect.uninterruptibleMask((restore) => onOutcome(restore(self), (exit) => state.end(exit)))
}

/** The attempt in a fiber of its own (the caller has children an interruption would reach). */
const forked = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => E2,
  breaker: Breaker | undefined,
  ticket: number
): Effect.Effect<A, E | E2, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) =>
    Effect.async<A, E | E2>((resume) => {
      const child = Runtime.runFork(runtime)(self)
      let timedOut = false
      const disarm = arm(clock, millis, () => {
        timedOut = true
        child.unsafeInterruptAsFork(child.id())
      })
      child.addObserver((exit) => {
        disarm()
        const outcome: Exit.Exit<A, E | E2> = timedOut && Exit.isInterrupted(exit) ? Exit.fail(onTimeout()) : exit
        // As if the attempt had run in the caller's fiber: its FiberRef changes are kept.
        resume(Effect.zipRight(Fiber.inheritAll(child), report(breaker, ticket, clock, outcome)))
      })
      return Effect.suspend(() => {
        disarm()
        return Fiber.interrupt(child)
      })
    }))

/** `self` bounded by `millis`: in the caller's fiber when it has no children, else in a fiber of its own. */
const timed = <A, E, R, E2>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  self: Effect.Effect<A, E, R>,
  clock: Clock.Clock,
  millis: number,
  onTimeout: () => E2,
  breaker: Breaker | undefined,
  ticket: number
): Effect.Effect<A, E | E2, R> =>
  childless(fiber)
    ? inFiber(fiber, self, clock, millis, onTimeout, breaker, ticket)
    : forked(self, clock, millis, onTimeout, breaker, ticket)

/** Runs `self` through `breaker` without a timeout. */
const guarded = <A, E, R>(self: Effect.Effect<A, E, R>, clock: Clock.Clock, breaker: Breaker, ticket: number) =>
  Effect.onExit(self, (exit) => {
    breaker.onExit(ticket, clock.unsafeCurrentTimeMillis(), exit)
    return logTransitions(breaker)
  })

/**
 * Runs one attempt of `self` in `fiber` (the fiber that runs the returned effect): refused with
 * `CircuitOpen` while `breaker` is open, failed with `onTimeout()` after `timeout` (interrupting
 * `self`), and its outcome reported to `breaker`. Admission happens when this is called, so call
 * it as the attempt starts.
 */
export const attemptIn = <A, E, R, E2>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  clock: Clock.Clock,
  self: Effect.Effect<A, E, R>,
  timeout: Duration.Duration | undefined,
  onTimeout: () => E2,
  breaker?: Breaker | undefined
): Effect.Effect<A, E | E2 | CircuitOpen, R> => {
  let ticket = 0
  if (breaker !== undefined) {
    const admitted = breaker.tryAcquire(clock.unsafeCurrentTimeMillis())
    if (typeof admitted !== "number") return Effect.zipRight(logTransitions(breaker), Exit.fail(admitted))
    ticket = admitted
  }
  if (timeout === undefined) return breaker === undefined ? self : guarded(self, clock, breaker, ticket)
  return timed(fiber, self, clock, Duration.toMillis(timeout), onTimeout, breaker, ticket)
}

/** Fails with `onTimeout()` when `self` takes longer than `duration`; `self` is interrupted. */
export const timeoutFail = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.withFiberRuntime((fiber) =>
    timed(fiber, self, Context.get(fiber.currentDefaultServices, Clock.Clock), Duration.toMillis(duration), onTimeout, undefined, 0)
  )
