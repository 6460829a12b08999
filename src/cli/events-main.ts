/**
 * `big3 events …` on its own: the same command definitions and reporting as the whole program,
 * with no other command in the tree. `scripts/bundle.mjs` bundles it into one CommonJS file,
 * which `main.ts` runs with V8's code cache (`compileCache.ts`): a hook that sends one event per
 * tool call pays for this start-up each time.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import { eventsCommand } from "./events.js"
import { runReported } from "./report.js"
import { start } from "./start.js"
import { version } from "./version.js"

const big3 = Command.make("big3").pipe(Command.withSubcommands([eventsCommand]))

start(runReported(Command.run(big3, { name: "big3", version }), [eventsCommand.descriptor]))
