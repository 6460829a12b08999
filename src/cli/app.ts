/**
 * The `big3` program as a value: the command tree. `program.ts` runs it; tests run it in-process.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import { agentsCommand } from "./agents.js"
import { browseCommand } from "./browse.js"
import { configCommand } from "./config.js"
import { demoCommand } from "./demo.js"
import { eventsCommand } from "./events.js"
import { geminiCommand } from "./gemini.js"
import { sandboxCommand } from "./sandbox.js"
import { serveCommand } from "./serve.js"
import { voiceCommand } from "./voice.js"
import { runReported } from "./report.js"
import { version } from "./version.js"

const commands = [
  configCommand,
  demoCommand,
  geminiCommand,
  eventsCommand,
  agentsCommand,
  sandboxCommand,
  browseCommand,
  voiceCommand,
  serveCommand
] as const

export const big3 = Command.make("big3").pipe(
  Command.withDescription("reliability runtime of the Big Three agent system"),
  Command.withSubcommands(commands)
)

export const cli = Command.run(big3, { name: "big3", version })

/**
 * Runs `big3` with `argv` (as `process.argv`), reporting failures; succeeds with the exit code
 * (see `report.ts`).
 */
export const run = runReported(cli, commands.map((command) => command.descriptor))
