/**
 * `big3 voice --text`: talk to the orchestrator in text. One user turn per stdin line (the next
 * line is sent once the previous turn is done); the assistant's messages and each tool call are
 * printed on stdout as they happen, logs (reconnects, retries) go to stderr. At end of input it
 * waits for the last turn and exits 0; when the first connection cannot be made (retries with
 * policy `network` exhausted) or the session is lost, it exits 1 naming the cause.
 *
 * Configured from the environment: `OPENAI_API_KEY` (required), `OPENAI_REALTIME_URL`,
 * `OPENAI_REALTIME_MODEL`, and the agents' and events' settings (`BIG3_STATE_DIR`, …).
 *
 * The command definition only; the work is in `voice-run.ts`, loaded when the command runs.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { failCommand, loadModule, metricsOption, withMetrics } from "./shared.js"

const text = Options.boolean("text").pipe(
  Options.withDescription("text mode: one user turn per stdin line (the default; there are no sound devices here)")
)
const instructions = Options.text("instructions").pipe(
  Options.optional,
  Options.withDescription("the session's instructions (default: the orchestrator's)")
)

const load = loadModule("voice", () => import("./voice-run.js"))

/** stdin as lines. */
const stdinLines = NodeStream.stdin.pipe(Stream.decodeText(), Stream.splitLines)

export const voiceCommand = Command.make(
  "voice",
  { text, instructions, metrics: metricsOption },
  ({ instructions, metrics }) =>
    withMetrics(
      metrics,
      Effect.flatMap(load, (run) =>
        run.runVoice({ lines: stdinLines, instructions: Option.getOrUndefined(instructions) }).pipe(
          Effect.catchAll(failCommand("voice"))
        ))
    )
).pipe(Command.withDescription("talk to the voice orchestrator in text (OpenAI Realtime); one turn per stdin line"))
