/**
 * The body of `big3 voice`, loaded on demand: the orchestrator over the runtime (agents on the
 * backend `BIG3_AGENT_BACKEND` names, events to the observability server).
 *
 * @internal
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Agents from "../Agents.js"
import type * as Realtime from "../Realtime.js"
import * as Runtime from "../Runtime.js"
import * as Voice from "../Voice.js"
import { backend } from "./agents-run.js"

const oneLine = (text: string, max = 300): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length <= max ? flat : `${flat.slice(0, max)}…`
}

/** What stdout shows: the assistant's messages, each tool call and its answer. */
const print = (event: Voice.Event): Effect.Effect<void> => {
  switch (event._tag) {
    case "AssistantText":
      return Console.log(event.text)
    case "FunctionCall":
      return Console.log(`→ ${event.name} ${event.arguments}`)
    case "ToolAnswered":
      return Console.log(`← ${event.name} ${event.ok ? "ok" : "failed"} (${event.ms} ms): ${oneLine(event.output)}`)
    default:
      return Effect.void
  }
}

const describeTurn = (turn: Realtime.Turn): Effect.Effect<void> =>
  turn.status === "completed"
    ? Effect.void
    : Effect.logWarning(`the response ended ${turn.status}${turn.error === undefined ? "" : `: ${turn.error}`}`)

/** How often the end of input looks again at the agent commands still running. */
const commandPoll = "200 millis"

/**
 * At the end of input, waits for the agent commands the session started: they run in this
 * process, and leaving would interrupt them (as `big3 agents command` stays for its command).
 * An interrupt (Ctrl-C) stops them as usual.
 */
const awaitAgentCommands = Effect.gen(function*() {
  const running = Effect.map(Agents.list, (agents) => agents.filter((agent) => agent.runningCommands > 0))
  let busy = yield* running
  if (busy.length === 0) return
  yield* Effect.logInfo(
    `end of input: waiting for the agent command(s) of ${busy.map((agent) => agent.name).join(", ")} to end ` +
      `(they run in this process; interrupt to stop them)`
  )
  while (busy.length > 0) {
    yield* Effect.sleep(commandPoll)
    busy = yield* running
  }
})

/**
 * Runs one session over `lines` (one user turn each, blank lines skipped), waits for the agent
 * commands it started, then closes it. Fails with the cause when the session cannot be opened or
 * is lost.
 */
export const runVoice = <E>(options: {
  readonly lines: Stream.Stream<string, E>
  readonly instructions?: string | undefined
}) =>
  Effect.scoped(Effect.gen(function*() {
    const voice = yield* Voice.Voice
    const session = yield* voice.session({ instructions: options.instructions, onEvent: print })
    yield* Effect.logInfo(`voice session ${session.id} open; one turn per line, end of input to finish`)
    // A session lost while waiting for input ends the command now, not at the next line.
    yield* Effect.raceFirst(
      Stream.runForEach(
        options.lines,
        (line) => line.trim() === "" ? Effect.void : Effect.flatMap(session.say(line.trim()), describeTurn)
      ),
      session.lost
    )
    yield* awaitAgentCommands
    const stats = yield* session.stats
    yield* Effect.logInfo(
      `voice session ${session.id} done: ${stats.turns} turns, ${stats.callsRun} tool calls, ` +
        `${stats.reconnects.length} reconnects${stats.reconnects.length === 0 ? "" : ` (${stats.reconnects.map((r) => r.reason).join(", ")})`}`
    )
  })).pipe(Effect.provide(Runtime.voiceWith({ agentBackend: backend })))
