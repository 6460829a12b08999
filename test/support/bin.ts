/**
 * The `big3` bin as a child process (`node --import tsx src/cli/main.ts`, no build needed), for
 * tests of exit codes, signals and crashes. Every process is SIGKILLed with its scope if it is
 * still running, and checked gone by pid.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { isRunning } from "./processes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Start-up through tsx takes about 2.5 s; a loaded machine may take longer. */
export const startUp = Duration.seconds(20)

/** The test runner's environment without anything that would configure big3. */
export const baseEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(BIG3_|OBSERVABILITY_|GEMINI_|ANTHROPIC_|CLAUDE_)/.test(key))
  )

export interface Big3Process {
  readonly child: ChildProcess
  readonly pid: number
  readonly stdout: () => string
  readonly stderr: () => string
  /** The exit code, or the signal name when the process died of it. */
  readonly exit: Deferred.Deferred<number | string>
}

/**
 * Spawns `big3 args…`; SIGKILLed with the scope if it is still running, then checked gone by pid.
 * `stdin: "pipe"` gives it a stdin that stays open (nothing written) until the process ends.
 */
export const spawnBig3 = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: { readonly stdin?: "ignore" | "pipe" } = {}
) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const exit = yield* Deferred.make<number | string>()
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        cwd: root,
        env: { ...baseEnv(), BIG3_LOG_LEVEL: "info", ...env },
        stdio: [options.stdin ?? "ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      child.on("exit", (code, signal) => Deferred.unsafeDone(exit, Effect.succeed(code ?? signal ?? "unknown")))
      return { child, pid: child.pid ?? -1, stdout: () => stdout, stderr: () => stderr, exit } satisfies Big3Process
    }),
    ({ child, exit, pid }) =>
      Effect.gen(function*() {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        yield* Deferred.await(exit).pipe(Effect.timeout("10 seconds"), Effect.ignore)
        if (isRunning(pid)) yield* Effect.dieMessage(`big3 process ${pid} outlived its test`)
      })
  )

/** Waits until `check()` holds; fails naming `what` (and the process's output) otherwise. */
export const waitFor = (running: Big3Process | undefined, what: string, check: () => boolean, within: Duration.DurationInput = startUp) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(Duration.decode(within))
    while (!check()) {
      if (Date.now() > deadline || (running !== undefined && (yield* Deferred.isDone(running.exit)))) {
        const output = running === undefined ? "" : `\nstdout:\n${running.stdout()}\nstderr:\n${running.stderr()}`
        return yield* Effect.dieMessage(`gave up waiting for ${what}${output}`)
      }
      yield* Effect.sleep("50 millis")
    }
  })

/** Waits until `read()` matches `pattern`; fails naming what was seen otherwise. */
export const waitForOutput = (running: Big3Process, read: () => string, pattern: RegExp) =>
  waitFor(running, String(pattern), () => pattern.test(read()))

/** The exit code (or signal) within `within`. */
export const exitCodeOf = (running: Big3Process, within: Duration.DurationInput) =>
  Deferred.await(running.exit).pipe(
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`big3 did not exit in time; stderr:\n${running.stderr()}`)
    }),
    Effect.orDie
  )
