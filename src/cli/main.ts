#!/usr/bin/env node
/**
 * The `big3` bin. `big3 --version` is answered here, before anything else is loaded (a hook that
 * checks the version should not pay for the whole program); everything else is the program's.
 */
import { version } from "./version.js"

if (process.argv.length === 3 && process.argv[2] === "--version") {
  // What @effect/cli prints for --version.
  process.stdout.write(`${version}\n\n`)
} else {
  await import("./program.js").catch((error: unknown) => {
    process.stderr.write(
      `big3: cannot load the program (${error instanceof Error ? error.message : String(error)}); ` +
        `reinstall big3 (npm install) and try again\n`
    )
    process.exitCode = 1
  })
}
