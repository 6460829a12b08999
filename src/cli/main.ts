#!/usr/bin/env node
/**
 * The `big3` bin. `big3 --version` is answered here, before anything else is loaded (a hook that
 * checks the version should not pay for the whole program); everything else is the program's.
 */
import * as v8 from "node:v8"
import { version } from "./version.js"

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
  await import("./program.js").catch((error: unknown) => {
    process.stderr.write(
      `big3: cannot load the program (${error instanceof Error ? error.message : String(error)}); ` +
        `reinstall big3 (npm install) and try again\n`
    )
    process.exitCode = 1
  })
}
