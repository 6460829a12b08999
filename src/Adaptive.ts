/**
 * Adaptive timeouts and adaptive 429 pacing: what each runtime learns from the calls it makes.
 *
 * - Per operation switched on (`BIG3_ADAPTIVE_<OP>=on`), the protection pipeline's per-attempt
 *   timeout is learned from the latencies of successful attempts over a sliding window:
 *   `clamp(p99 × BIG3_ADAPTIVE_MULTIPLIER, BIG3_ADAPTIVE_FLOOR, configured timeout)`, once
 *   `BIG3_ADAPTIVE_MIN_SAMPLES` are in the window (the configured timeout until then). The
 *   configured timeout stays the ceiling. A move of more than 2× is logged; the value is the gauge
 *   `big3_adaptive_timeout_seconds{service,operation}`.
 * - Per service switched on (`BIG3_ADAPTIVE_RATE_<SERVICE>=on`), a token bucket paces attempts
 *   once the service answers 429 (the AWS SDKs' "adaptive" retry mode), and lets the rate grow
 *   back when it stops; the rate is the gauge `big3_adaptive_rate_per_second{service}`.
 *
 * The state is this service's, one per runtime. `layer` keeps it in memory; `layerStore` also
 * keeps each learned timeout in the store (so a new process, and `big3 config`, start from it).
 * `Resilience.makeProtect` uses the service when the context has it (`Runtime.layer` does);
 * without it, pipelines use their configured timeouts.
 *
 * @since 0.2.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type { Saved } from "./adaptive/Saved.js"
import * as SavedStore from "./adaptive/Saved.js"
import { Adaptive, make } from "./adaptive/Service.js"
import * as Errors from "./Errors.js"
import type { ReliabilityConfig } from "./ReliabilityConfig.js"
import * as Store from "./Store.js"

export { AdaptiveTimeout, Pacer } from "./adaptive/Handles.js"
export type { Saved } from "./adaptive/Saved.js"
export { Adaptive, make, startingFrom } from "./adaptive/Service.js"
export type { Learned, Service, Summary } from "./adaptive/Service.js"

/** The service, learning in memory only. */
export const layer: Layer.Layer<Adaptive, never, ReliabilityConfig> = Layer.effect(Adaptive, make)

/** How often learned timeouts are written to the store (and once more at shutdown). */
export const saveInterval = Duration.seconds(30)

/**
 * The service, starting from what the store kept and writing what it learns back (every
 * `saveInterval` and when the layer closes). With no adaptive operation it does not touch the
 * store. Fails with `SqlError` when the saved state cannot be read: that is not "nothing learned".
 */
export const layerStore: Layer.Layer<Adaptive, SqlError, ReliabilityConfig | SqlClient.SqlClient> = Layer.scoped(
  Adaptive,
  Effect.gen(function*() {
    const service = yield* make
    if (service.settings.operations.size === 0) return service
    yield* Store.ensureSchema("adaptive timeouts", SavedStore.schema)
    service.restore(yield* SavedStore.load)
    const save = Effect.flatMap(service.snapshot, SavedStore.save).pipe(
      Effect.catchAll((error) => Effect.logWarning(`cannot save the learned timeouts: ${Errors.describe(error)}`))
    )
    yield* Effect.forkScoped(Effect.schedule(save, Schedule.spaced(saveInterval)))
    yield* Effect.addFinalizer(() => save)
    return service
  })
)

/** What the store kept, per operation (what `big3 config` shows). */
export const loadSaved: Effect.Effect<ReadonlyArray<Saved>, SqlError, SqlClient.SqlClient> = Effect.zipRight(
  Store.ensureSchema("adaptive timeouts", SavedStore.schema),
  SavedStore.load
)
