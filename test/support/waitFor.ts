/** Waiting on a live outcome (a client's stats, a server's count) without a time limit of its own. */
import * as Effect from "effect/Effect"

/**
 * Reads until `check` holds, looking again every 20 ms, and returns the value. No time limit of
 * its own: the test's timeout is the bound, so a slow machine makes the test slower, not red.
 */
export const waitFor = <A, E, R>(read: Effect.Effect<A, E, R>, check: (a: A) => boolean): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    let value = yield* read
    while (!check(value)) {
      yield* Effect.sleep("20 millis")
      value = yield* read
    }
    return value
  })
