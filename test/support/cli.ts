/** Runs the `big3` program in-process, as the CLI tests do. */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { run } from "../../src/cli/app.js"
import { captureConsole, captureLogs } from "./capture.js"

/**
 * `big3 args…` with `env` as the environment; succeeds with the exit code, what it printed, and
 * what it logged ("LEVEL message" lines, which the real CLI writes to stderr).
 */
export const big3 = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.suspend(() => {
    const logs = captureLogs()
    return captureConsole(run(["node", "big3", ...args])).pipe(
      Effect.map(({ exit, stderr, stdout }) => ({
        code: Exit.isSuccess(exit) ? exit.value : -1,
        stdout,
        stderr,
        logs: logs.lines
      })),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })),
      Effect.provide(logs.layer),
      Effect.provide(NodeContext.layer)
    )
  })
