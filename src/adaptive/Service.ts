/**
 * The adaptive service's tag, interface and \`make\`: the learned timeouts and pacers of one
 * runtime. Kept apart from \`Adaptive.ts\` (which adds the store) so the pipeline can look the
 * service up without loading the store.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { AdaptiveSettings } from "../reliabilityConfig/defaults.js"
import { ReliabilityConfig } from "../ReliabilityConfig.js"
import { AdaptiveTimeout, Pacer } from "./Handles.js"
import type { LearnerSettings } from "./Learner.js"
import { Learner } from "./Learner.js"
import type { Buckets } from "./LatencyWindow.js"
import type { Saved } from "./Saved.js"

/** What is learned for one operation. */
export interface Summary {
  readonly operation: string
  /** Successful attempts in the window. */
  readonly samples: number
  /** The learned per-attempt timeout; absent until `minSamples` are in the window. */
  readonly learned: Duration.Duration | undefined
  readonly p99: Duration.Duration | undefined
  readonly configured: Duration.Duration
}

/** The adaptive service. */
export interface Service {
  readonly settings: AdaptiveSettings
  /**
   * The learned timeout of `operation` (created on first use and shared by every pipeline of the
   * runtime), or `undefined` when the operation does not adapt, or when another pipeline of it
   * already adapts under a different configured ceiling. `now` is ms of the Effect `Clock`.
   */
  readonly timeoutFor: (
    operation: string,
    configured: Duration.Duration,
    service: string,
    now: number
  ) => AdaptiveTimeout | undefined
  /** The 429 pacer of `service`, or `undefined` when its pacing is off. */
  readonly pacerFor: (service: string, now: number) => Pacer | undefined
  /** What is learned so far, per operation in use. */
  readonly summaries: Effect.Effect<ReadonlyArray<Summary>>
  /** The state to keep in the store, per operation in use. */
  readonly snapshot: Effect.Effect<ReadonlyArray<Saved>>
  /** Starts operations from saved state (each the first time a pipeline asks for it). */
  readonly restore: (saved: ReadonlyArray<Saved>) => void
}

/** What is learned for one operation at a given time: its samples and, from `minSamples` on, its timeout. */
export interface Learned {
  readonly samples: number
  /** Absent until `minSamples` are in the window. */
  readonly learned: Duration.Duration | undefined
}

/** The settings of the learner of an operation whose configured timeout is `configuredMillis`. */
const learnerSettings = (settings: AdaptiveSettings, configuredMillis: number): LearnerSettings => ({
  configuredMillis,
  multiplier: settings.multiplier,
  floorMillis: Duration.toMillis(settings.floor),
  minSamples: settings.minSamples,
  windowMillis: Duration.toMillis(settings.window)
})

const learnedOf = (learner: Learner, now: number): Learned => {
  const samples = learner.samples(now)
  const current = learner.timeoutMillis(now)
  return { samples, learned: samples >= learner.settings.minSamples ? Duration.millis(current) : undefined }
}

/**
 * What a runtime started at `now` would use for an operation whose configured timeout is
 * `configured`, starting from a saved histogram (as `layerStore` restores it).
 */
export const startingFrom = (
  settings: AdaptiveSettings,
  configured: Duration.Duration,
  buckets: Buckets,
  now: number
): Learned => {
  const learner = new Learner(learnerSettings(settings, Duration.toMillis(configured)))
  learner.restore(now, buckets)
  return learnedOf(learner, now)
}

/** The adaptive service tag. */
export class Adaptive extends Context.Tag("big3/Adaptive")<Adaptive, Service>() {}

/** Builds the service from the configuration's adaptive settings, with nothing learned yet. */
export const make: Effect.Effect<Service, never, ReliabilityConfig> = Effect.map(ReliabilityConfig, (config) => {
  const settings = config.adaptive
  const timeouts = new Map<string, AdaptiveTimeout>()
  const pacers = new Map<string, Pacer>()
  const saved = new Map<string, Saved>()

  const timeoutFor: Service["timeoutFor"] = (operation, configured, service, now) => {
    if (!settings.operations.has(operation) || !Duration.isFinite(configured)) return undefined
    const configuredMillis = Duration.toMillis(configured)
    const existing = timeouts.get(operation)
    if (existing !== undefined) {
      return existing.learner.settings.configuredMillis === configuredMillis ? existing : undefined
    }
    const created = new AdaptiveTimeout(operation, service, learnerSettings(settings, configuredMillis))
    const start = saved.get(operation)
    if (start !== undefined) created.learner.restore(now, start.buckets)
    created.timeout(now)
    timeouts.set(operation, created)
    return created
  }

  const pacerFor: Service["pacerFor"] = (service, now) => {
    if (!settings.rate.has(service)) return undefined
    let pacer = pacers.get(service)
    if (pacer === undefined) pacers.set(service, pacer = new Pacer(service, now))
    return pacer
  }

  const summaryOf = (timeout: AdaptiveTimeout, now: number): Summary => {
    const learner = timeout.learner
    const { learned, samples } = learnedOf(learner, now)
    const p99 = learner.p99Millis
    return {
      operation: timeout.operation,
      samples,
      learned,
      p99: p99 === undefined ? undefined : Duration.millis(p99),
      configured: Duration.millis(learner.settings.configuredMillis)
    }
  }

  return Adaptive.of({
    settings,
    timeoutFor,
    pacerFor,
    summaries: Effect.map(Clock.currentTimeMillis, (now) => Array.from(timeouts.values(), (timeout) => summaryOf(timeout, now))),
    snapshot: Effect.map(Clock.currentTimeMillis, (now) =>
      Array.from(timeouts.values(), (timeout) => {
        const summary = summaryOf(timeout, now)
        return {
          operation: summary.operation,
          samples: summary.samples,
          learnedMillis: summary.learned === undefined ? undefined : Duration.toMillis(summary.learned),
          p99Millis: summary.p99 === undefined ? undefined : Duration.toMillis(summary.p99),
          configuredMillis: Duration.toMillis(summary.configured),
          buckets: timeout.learner.buckets(now),
          updatedAt: now
        }
      })),
    restore: (rows) => {
      for (const row of rows) if (settings.operations.has(row.operation)) saved.set(row.operation, row)
    }
  })
})

