/**
 * `big3 serve` processes for the runner tests: start one on a state directory, kill it, read what
 * it wrote, and drive it with `big3 agents …` (in-process, through its API and token).
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Runner from "../../src/Runner.js"
import { type Big3Process, exitCodeOf, spawnBig3, waitFor } from "./bin.js"
import { big3 } from "./cli.js"
import { isRunning } from "./processes.js"

export const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "")
export const statusOf = (content: string) => /^- Status: (.+)$/m.exec(content)?.[1]
export const count = (content: string, pattern: RegExp) => content.match(pattern)?.length ?? 0

/** Starts `big3 serve` on `stateDir` and waits until its runner.json names this process. */
export const serve = (stateDir: string, env: Record<string, string>) =>
  Effect.gen(function*() {
    const runner = yield* spawnBig3(["serve"], { ...env, BIG3_STATE_DIR: stateDir })
    const file = path.join(stateDir, Runner.stateFileName)
    yield* waitFor(runner, "runner.json", () => read(file).includes(`"pid":${runner.pid}`))
    return runner
  })

/** SIGKILL, and wait until the process is gone. */
export const kill9 = (runner: Big3Process) =>
  Effect.gen(function*() {
    runner.child.kill("SIGKILL")
    assert.strictEqual(yield* exitCodeOf(runner, "10 seconds"), "SIGKILL")
    assert.isFalse(isRunning(runner.pid))
  })

/** On failure, prints what the runners said (their logs explain most failures). */
export const showOnFailure = (runners: ReadonlyArray<Big3Process>) =>
  Effect.addFinalizer((exit) =>
    Exit.isFailure(exit)
      ? Effect.sync(() => runners.forEach((runner) => console.log(`runner ${runner.pid} stderr:\n${runner.stderr()}`)))
      : Effect.void)

/** `big3 agents args…`; dies unless it exits 0. */
export const agentsCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.flatMap(big3(["agents", ...args], env), (result) =>
    result.code === 0 ? Effect.succeed(result) : Effect.dieMessage(`big3 agents ${args.join(" ")} exited ${result.code}: ${result.stderr}`))

/** What the runner serving `stateDir` says about itself (its API, with its token). */
export const info = (stateDir: string) =>
  Effect.scoped(Effect.flatMap(Runner.connect(stateDir), (remote) => Option.getOrThrow(remote).info)).pipe(Effect.orDie)
