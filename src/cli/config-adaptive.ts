/**
 * What `big3 config` shows of adaptive timeouts: for each adaptive operation, the timeout a
 * runtime started now would use, from what the store kept (`Adaptive.layerStore` saves it):
 * learned, or still learning. Loaded only when an operation is adaptive, so a plain
 * `big3 config` does not open SQLite.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as Adaptive from "../Adaptive.js"
import * as Errors from "../Errors.js"
import type * as ReliabilityConfig from "../ReliabilityConfig.js"
import * as Store from "../Store.js"

/** Per adaptive operation: what is learned, or why it cannot be told. */
export type LearnedView = { readonly _tag: "Read"; readonly byOperation: ReadonlyMap<string, Adaptive.Learned> } | {
  readonly _tag: "Unreadable"
  readonly reason: string
}

/**
 * Reads the store under `BIG3_STATE_DIR` (without creating it: no store means nothing learned
 * yet) and computes, with today's settings, what a new runtime would start from.
 */
export const readLearned = (
  config: ReliabilityConfig.Service
): Effect.Effect<LearnedView, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const file = Store.databasePath(yield* Store.stateDir)
    const saved = fs.existsSync(file)
      ? yield* Effect.scoped(
        Effect.flatMap(Store.make({ filename: file }), (client) =>
          Adaptive.loadSaved.pipe(Effect.provideService(SqlClient.SqlClient, client)))
      ).pipe(Effect.either)
      : undefined
    if (saved?._tag === "Left") return { _tag: "Unreadable", reason: Errors.describe(saved.left) } as const
    const now = yield* Clock.currentTimeMillis
    const settings = config.adaptive
    const byOperation = new Map<string, Adaptive.Learned>()
    for (const operation of settings.operations) {
      const row = saved?.right.find((entry) => entry.operation === operation)
      if (row === undefined) {
        byOperation.set(operation, { samples: 0, learned: undefined })
        continue
      }
      byOperation.set(
        operation,
        Adaptive.startingFrom(settings, config.timeoutOrElse(operation, "10 seconds"), row.buckets, now)
      )
    }
    return { _tag: "Read", byOperation } as const
  })

/** "adaptive: learned 1.2s from 812 samples" or "adaptive: learning, 12/50 samples". */
export const describeLearned = (view: LearnedView, operation: string, minSamples: number): string => {
  if (view._tag === "Unreadable") return `adaptive: unknown (the store cannot be read)`
  const learned = view.byOperation.get(operation) ?? { samples: 0, learned: undefined }
  return learned.learned === undefined
    ? `adaptive: learning, ${learned.samples}/${minSamples} samples`
    : `adaptive: learned ${Errors.formatDuration(learned.learned)} from ${learned.samples} samples`
}
