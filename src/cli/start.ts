/**
 * Starts a `big3` program in this process: records which signal ends it, runs it on Node's
 * runtime with the CLI's logger and the platform services @effect/cli needs, and exits with the
 * program's code.
 *
 * Exit codes: 0 success, 1 failure, 2 bad arguments, 78 bad configuration, 129 / 130 / 143 after
 * SIGHUP / SIGINT / SIGTERM (work interrupted, events flushed or spooled first).
 *
 * @internal
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type * as Terminal from "@effect/platform/Terminal"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as CliLogger from "./logger.js"
import { ExitCode } from "./shared.js"

/** What `start` runs: `app.ts` `run`, or the events-only program's. */
export type Run<R> = (argv: ReadonlyArray<string>, signalCode: () => number | undefined) => Effect.Effect<number, never, R>

/** What @effect/cli needs, and no more: NodeContext.layer would also load child_process and worker_threads. */
type Platform = FileSystem.FileSystem | Path.Path | Terminal.Terminal

/**
 * Interrupts the program on SIGHUP (a closed terminal or ssh session), as `runMain` does on SIGINT
 * and SIGTERM: Node's default for SIGHUP kills the process on the spot, skipping every finalizer
 * (Chromium's profile, an operator file left "running", events not spooled). A second SIGHUP
 * during the shutdown kills at once, as a second SIGINT does.
 */
const interruptOnHangup = (onHangup: () => void): Effect.Effect<never> =>
  Effect.async<never>((resume) => {
    const listener = () => {
      onHangup()
      resume(Effect.interrupt)
    }
    process.once("SIGHUP", listener)
    return Effect.sync(() => process.removeListener("SIGHUP", listener))
  })

export const start = (run: Run<Platform>): void => {
  // Which signal ended us, so the exit code can say so (129 SIGHUP, 130 SIGINT, 143 SIGTERM).
  let signalCode: number | undefined
  process.once("SIGINT", () => (signalCode = ExitCode.sigint))
  process.once("SIGTERM", () => (signalCode = ExitCode.sigterm))

  let exitCode = 0
  const program = run(process.argv, () => signalCode).pipe(
    Effect.raceFirst(interruptOnHangup(() => (signalCode ??= ExitCode.sighup))),
    Effect.flatMap((code) => Effect.sync(() => (exitCode = code))),
    Effect.provide(CliLogger.layer),
    Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer))
  )

  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      const code = Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? signalCode ?? ExitCode.sigint : exitCode
      onExit(code)
      // The program and its scopes are done (every shutdown bounded). What can still hold the
      // event loop is work abandoned at its bound, such as an OTLP export to a collector that
      // does not answer (its own timers run to OTEL_EXPORTER_OTLP_TIMEOUT): do not wait for it.
      process.exit(code)
    }
  })
}
