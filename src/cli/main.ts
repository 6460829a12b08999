#!/usr/bin/env node
/**
 * The `big3` bin. `big3 --version` is answered here, before anything else is loaded (a hook that
 * checks the version should not pay for the whole program). `big3 events …` runs the events
 * bundle with V8's code cache when it can (`route.ts`); everything else is the program's.
 *
 * Bundled as CommonJS (`dist/bin/big3.cjs`): Node starts a CommonJS main module sooner than an
 * ES one, and this file is every command's first step.
 */
import { fileURLToPath } from "node:url"
import * as v8 from "node:v8"
import { messageOf } from "../internal/messageOf.js"
import { eventsBundleRuns } from "./route.js"
import { version } from "./version.js"

const cannotLoad = (error: unknown) => {
  process.stderr.write(
    `big3: cannot load the program (${messageOf(error)}); ` +
      `reinstall big3 (npm install) and try again\n`
  )
  process.exitCode = 1
}

/**
 * Starts the events bundle that `npm run build` puts beside this file; false when there is none
 * (the sources run through tsx), so the whole program runs instead.
 */
const startEventsBundle = async (): Promise<boolean> => {
  const CompileCache = await import("./compileCache.js")
  const filename = fileURLToPath(new URL("events.cjs", import.meta.url))
  try {
    CompileCache.run(filename, {
      dir: CompileCache.cacheDirectory(process.env),
      variant: process.argv[3] === "send" ? "send" : "events"
    })
    return true
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT" && "path" in error && error.path === filename) {
      return false
    }
    throw error
  }
}

if (process.argv.length === 3 && process.argv[2] === "--version") {
  // What @effect/cli prints for --version.
  process.stdout.write(`${version}\n\n`)
} else {
  if (process.argv[2] === "events") {
    // undici parses HTTP with WebAssembly, and V8's optimising compile of it runs on worker
    // threads that Node waits for before it exits: a few hundred ms of a one-event command.
    // Baseline (Liftoff) code parses a few answers as fast. Long-running commands keep the
    // optimising tier.
    v8.setFlagsFromString("--liftoff-only")
    // One event, once per hook: the optimising compiler's work on start-up code is never paid
    // back in a run this short (≈ 15% of the command's CPU). Its redelivery of an old backlog
    // runs slower for it; `big3 events flush` keeps the optimising tier for that.
    if (process.argv[3] === "send") v8.setFlagsFromString("--no-opt")
  }
  const startProgram = () => import("./program.js").then(() => undefined, cannotLoad)
  if (eventsBundleRuns(process.argv, process.env)) {
    void startEventsBundle().then((started) => (started ? undefined : startProgram()), cannotLoad)
  } else {
    void startProgram()
  }
}
