/**
 * SIGTERM and SIGINT in a library process: Node's default is to end the process at once, which
 * would lose the events waiting for their group commit. While the client runs it listens for
 * both: it commits what is pending, then, if nothing else in the process handles the signal,
 * raises it again so that the process ends as it would have without the client. An app that
 * handles the signal itself (`NodeRuntime.runMain` does) keeps its own behaviour: closing the
 * client's scope flushes and spools the rest.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"

const signals = ["SIGTERM", "SIGINT"] as const

/** Installs the listeners in the current scope; closing it removes them. */
export const commitOnSignals = (commit: Effect.Effect<void>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const installed: Array<readonly [NodeJS.Signals, () => void]> = []
    for (const signal of signals) {
      // The app's own handler (installed before the client, as `NodeRuntime.runMain` does) may
      // remove itself when the signal comes; it still decides what the signal does.
      const appHandles = process.listenerCount(signal) > 0
      const listener = (): void => {
        runFork(Effect.ensuring(
          commit,
          Effect.sync(() => {
            if (appHandles || process.listenerCount(signal) !== 1 || !process.listeners(signal).includes(listener)) return
            process.removeListener(signal, listener)
            process.kill(process.pid, signal)
          })
        ))
      }
      process.on(signal, listener)
      installed.push([signal, listener])
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const [signal, listener] of installed) process.removeListener(signal, listener)
      })
    )
  })
