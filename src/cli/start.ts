/**
 * Starts a `big3` program in this process: records which signal ends it, runs it on Node's
 * runtime with the CLI's logger and the platform services @effect/cli needs, and exits with the
 * program's code.
 *
 * Exit codes: 0 success, 1 failure, 2 bad arguments, 78 bad configuration, 129 / 130 / 143 after
 * SIGHUP / SIGINT / SIGTERM, 141 when stdout or stderr is closed (a broken pipe, as SIGPIPE);
 * each stops the work first (interrupted, events flushed or spooled).
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
 * Interrupts the program, as `runMain` does on SIGINT and SIGTERM, when `listen`'s callback
 * first fires; `listen` returns how to stop listening.
 */
const interruptWhen = (listen: (stop: () => void) => () => void): Effect.Effect<never> =>
  Effect.async<never>((resume) => {
    let stopped = false
    const unlisten = listen(() => {
      if (stopped) return
      stopped = true
      resume(Effect.interrupt)
    })
    return Effect.sync(unlisten)
  })

/**
 * SIGHUP (a closed terminal or ssh session): Node's default kills the process on the spot,
 * skipping every finalizer (Chromium's profile, an operator file left "running", events not
 * spooled). A second SIGHUP during the shutdown kills at once, as a second SIGINT does.
 */
const onHangup = (stop: () => void) => {
  process.once("SIGHUP", stop)
  return () => void process.removeListener("SIGHUP", stop)
}

/**
 * stdout or stderr gone (`big3 demo | head -1`): Node ignores SIGPIPE and reports the failed write
 * as an 'error' event, which crashes the process with a stack trace when nobody listens. The
 * listeners stay for the life of the process: a finalizer may still print after the stop.
 */
const onBrokenOutput = (stop: () => void) => {
  const listener = (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") stop()
  }
  process.stdout.on("error", listener)
  process.stderr.on("error", listener)
  return () => undefined
}

export const start = (run: Run<Platform>): void => {
  // Which signal ended us, so the exit code can say so (129 SIGHUP, 130 SIGINT, 141 a closed
  // output, as SIGPIPE, 143 SIGTERM).
  let signalCode: number | undefined
  process.once("SIGINT", () => (signalCode = ExitCode.sigint))
  process.once("SIGTERM", () => (signalCode = ExitCode.sigterm))

  let exitCode = 0
  const program = run(process.argv, () => signalCode).pipe(
    Effect.raceFirst(interruptWhen((stop) => onHangup(() => (signalCode ??= ExitCode.sighup, stop())))),
    Effect.raceFirst(interruptWhen((stop) => onBrokenOutput(() => (signalCode ??= ExitCode.sigpipe, stop())))),
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
