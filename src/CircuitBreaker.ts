/**
 * Circuit breakers and retry budgets, kept in one registry service keyed by service name and
 * configured from `ReliabilityConfig`.
 *
 * A breaker's bookkeeping is plain synchronous code (JavaScript runs one fiber step at a time,
 * so a synchronous update is atomic across fibers); the Effect wrappers add logging of state
 * changes. Only retryable failures count against a breaker: a 400 or a 401 proves the server is
 * up and answering.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Cause from "effect/Cause"
import { CircuitOpen, formatDuration, isRetryable } from "./Errors.js"
import { SlidingWindow } from "./internal/SlidingWindow.js"
import * as Metrics from "./Metrics.js"
import type { BreakerSettings, RetryBudget as RetryBudgetSettings } from "./ReliabilityConfig.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"

/** The three breaker states. */
export type State = "closed" | "open" | "half-open"

/** A state change, for logs and tests. */
export interface Transition {
  readonly service: string
  readonly from: State
  readonly to: State
  readonly at: number
  readonly reason: string
}

const stateValue: Record<State, number> = { closed: 0, "half-open": 1, open: 2 }

const SUCCESS = 0
const FAILURE = 1

/**
 * One breaker's state machine. Methods take the current time in milliseconds (from the Effect
 * `Clock`, so `TestClock` drives it). `tryAcquire` returns a ticket for an admitted call or the
 * `CircuitOpen` error; the ticket is handed back with the outcome, so outcomes of calls admitted
 * before a state change do not count against the new state.
 */
export class Breaker {
  private _state: State = "closed"
  private generation = 0
  private consecutiveFailures = 0
  private openedAt = 0
  private trialsInFlight = 0
  private trialSuccesses = 0
  private readonly window: SlidingWindow
  private readonly labels: ReturnType<typeof Metrics.labelsFor>
  private readonly openMillis: number
  /** State changes not yet logged; the Effect wrappers drain it. */
  readonly transitions: Array<Transition> = []

  constructor(readonly service: string, readonly settings: BreakerSettings) {
    this.window = new SlidingWindow(Duration.toMillis(settings.samplingWindow), 2)
    this.labels = Metrics.labelsFor(service)
    this.openMillis = Duration.toMillis(settings.openDuration)
    Metrics.breakerState.unsafeUpdate(0, this.labels)
  }

  /** The state at `now` (an open breaker whose time is up reads as half-open). */
  state(now: number): State {
    return this._state === "open" && now >= this.openedAt + this.openMillis ? "half-open" : this._state
  }

  /** Admits a call (a ticket) or refuses it with `CircuitOpen`. */
  tryAcquire(now: number): number | CircuitOpen {
    if (this._state === "closed") return this.generation
    if (this._state === "open") {
      const remaining = this.openedAt + this.openMillis - now
      if (remaining > 0) return this.refuse(Duration.millis(remaining), `it opened ${formatDuration(Duration.millis(now - this.openedAt))} ago`)
      this.moveTo("half-open", now, `open for ${formatDuration(this.settings.openDuration)}; letting ${this.settings.halfOpenMaxCalls} trial calls through`)
    }
    if (this.trialsInFlight >= this.settings.halfOpenMaxCalls) {
      return this.refuse(Duration.zero, `it is half-open and its ${this.settings.halfOpenMaxCalls} trial calls are in flight`)
    }
    this.trialsInFlight++
    return this.generation
  }

  /** Reports a call that succeeded, or failed in a way that proves the service answers. */
  onSuccess(ticket: number, now: number): void {
    if (ticket !== this.generation) return
    if (this._state === "half-open") {
      this.trialsInFlight--
      this.trialSuccesses++
      if (this.trialSuccesses >= this.settings.successThreshold) {
        this.moveTo("closed", now, `${this.trialSuccesses} trial calls succeeded`)
      }
    } else if (this.settings.mode === "consecutive") {
      this.consecutiveFailures = 0
    } else {
      this.window.add(now, SUCCESS)
    }
  }

  /** Reports a retryable failure. */
  onFailure(ticket: number, now: number): void {
    if (ticket !== this.generation) return
    if (this._state === "half-open") {
      this.trialsInFlight--
      this.open(now, "a trial call failed")
    } else if (this.settings.mode === "consecutive") {
      this.consecutiveFailures++
      if (this.consecutiveFailures >= this.settings.failureThreshold) {
        this.open(now, `${this.consecutiveFailures} consecutive failures`)
      }
    } else {
      this.window.add(now, FAILURE)
      const failures = this.window.sum(now, FAILURE)
      const total = failures + this.window.sum(now, SUCCESS)
      if (total >= this.settings.minimumThroughput && failures / total >= this.settings.failureRatio) {
        this.open(
          now,
          `${failures} of ${total} calls failed in the last ${formatDuration(this.settings.samplingWindow)} ` +
            `(ratio ${(failures / total).toFixed(2)} ≥ ${this.settings.failureRatio})`
        )
      }
    }
  }

  /** Reports a call that was interrupted: it says nothing about the service. */
  onCancel(ticket: number): void {
    if (ticket === this.generation && this._state === "half-open") this.trialsInFlight--
  }

  /** Reports an outcome given as an `Exit`. */
  onExit(ticket: number, now: number, exit: Exit.Exit<unknown, unknown>): void {
    if (Exit.isSuccess(exit)) return this.onSuccess(ticket, now)
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") {
      return isRetryable(failure.value) ? this.onFailure(ticket, now) : this.onSuccess(ticket, now)
    }
    // Interruption or a defect: a defect is our bug, not the service's.
    this.onCancel(ticket)
  }

  /** Forces the breaker closed, forgetting its counts. */
  reset(now: number): void {
    if (this._state !== "closed") this.moveTo("closed", now, "reset")
    else this.clearCounts()
  }

  private open(now: number, reason: string): void {
    this.openedAt = now
    this.moveTo("open", now, `${reason}; failing fast for ${formatDuration(this.settings.openDuration)}`)
  }

  private refuse(retryAfter: Duration.Duration, why: string): CircuitOpen {
    Metrics.breakerRejections.unsafeUpdate(1, this.labels)
    return new CircuitOpen({
      service: this.service,
      retryAfter,
      message: `circuit breaker "${this.service}" is open (${why}); calls resume in ${formatDuration(retryAfter)}`
    })
  }

  private clearCounts(): void {
    this.consecutiveFailures = 0
    this.trialsInFlight = 0
    this.trialSuccesses = 0
    this.window.clear()
  }

  private moveTo(to: State, now: number, reason: string): void {
    const from = this._state
    this._state = to
    this.generation++
    this.clearCounts()
    Metrics.breakerState.unsafeUpdate(stateValue[to], this.labels)
    Metrics.breakerTransitions.unsafeUpdate(1, Metrics.labelsFor(this.service, { state: to }))
    this.transitions.push({ service: this.service, from, to, at: now, reason })
  }
}

/**
 * A retry budget (gRPC retry throttling / AWS retry quota style): a retry is allowed while
 * retries in the window stay below `max(minRetries, ratio × calls)`.
 */
export class RetryBudget {
  private readonly window: SlidingWindow
  constructor(readonly service: string, readonly settings: RetryBudgetSettings) {
    this.window = new SlidingWindow(Duration.toMillis(settings.window), 2)
  }

  /** Counts one call (not one attempt). */
  recordCall(now: number): void {
    if (this.settings.enabled) this.window.add(now, 0)
  }

  /** Takes a retry from the budget, or says there is none left. */
  tryRetry(now: number): boolean {
    if (!this.settings.enabled) return true
    const allowed = Math.max(this.settings.minRetries, this.settings.ratio * this.window.sum(now, 0))
    if (this.window.sum(now, 1) >= allowed) return false
    this.window.add(now, 1)
    return true
  }
}

/** The registry. */
export interface Service {
  /** The breaker for `service`, created on first use from `ReliabilityConfig.breaker(service)`. */
  readonly get: (service: string) => Breaker
  /** The retry budget for `service`, created on first use. */
  readonly budget: (service: string) => RetryBudget
  /** Every breaker created so far with its state at `now`. */
  readonly states: (now: number) => ReadonlyArray<{ readonly service: string; readonly state: State }>
}

/** The breaker registry tag. */
export class CircuitBreaker extends Context.Tag("big3/CircuitBreaker")<CircuitBreaker, Service>() {}

/** Builds a registry from the configuration. */
export const make: Effect.Effect<Service, never, ReliabilityConfig> = Effect.map(ReliabilityConfig, (config) => {
  const breakers = new Map<string, Breaker>()
  const budgets = new Map<string, RetryBudget>()
  return CircuitBreaker.of({
    get: (service) => {
      let breaker = breakers.get(service)
      if (breaker === undefined) {
        breaker = new Breaker(service, config.breakerOf(service))
        breakers.set(service, breaker)
      }
      return breaker
    },
    budget: (service) => {
      let budget = budgets.get(service)
      if (budget === undefined) {
        budget = new RetryBudget(service, config.budget)
        budgets.set(service, budget)
      }
      return budget
    },
    states: (now) => Array.from(breakers.values(), (breaker) => ({ service: breaker.service, state: breaker.state(now) }))
  })
})

/** The registry layer; needs `ReliabilityConfig`. */
export const layer: Layer.Layer<CircuitBreaker, never, ReliabilityConfig> = Layer.effect(CircuitBreaker, make)

/** Logs and empties a breaker's pending state changes. */
export const logTransitions = (breaker: Breaker): Effect.Effect<void> => {
  if (breaker.transitions.length === 0) return Effect.void
  const pending = breaker.transitions.splice(0)
  return Effect.forEach(pending, (transition) => {
    const message = `circuit breaker "${transition.service}" ${transition.from} → ${transition.to}: ${transition.reason}`
    return transition.to === "open" ? Effect.logWarning(message) : Effect.logInfo(message)
  }, { discard: true })
}

/**
 * Runs `self` through `breaker`: fails fast with `CircuitOpen` while it is open, and reports the
 * outcome (retryable failures count; interruption releases a half-open trial slot).
 */
export const guard = (breaker: Breaker) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpen, R> =>
  Effect.clockWith((clock) =>
    Effect.suspend((): Effect.Effect<A, E | CircuitOpen, R> => {
      const ticket = breaker.tryAcquire(clock.unsafeCurrentTimeMillis())
      if (typeof ticket !== "number") return Effect.zipRight(logTransitions(breaker), Effect.fail(ticket))
      return Effect.onExit(self, (exit) => {
        breaker.onExit(ticket, clock.unsafeCurrentTimeMillis(), exit)
        return logTransitions(breaker)
      })
    })
  )

/** Runs `self` through the breaker named `service` of the registry. */
export const withBreaker = (service: string) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpen, R | CircuitBreaker> =>
  Effect.flatMap(CircuitBreaker, (registry) => guard(registry.get(service))(self))

/** The current state of the breaker named `service`. */
export const state = (service: string): Effect.Effect<State, never, CircuitBreaker> =>
  Effect.flatMap(CircuitBreaker, (registry) => Effect.map(Clock.currentTimeMillis, (now) => registry.get(service).state(now)))
