/**
 * The voice scenario of `big3 demo`: a scripted Realtime session against the sandbox that
 * creates an agent, commands it and reads its result, while the sandbox drops the socket in the
 * middle of the second turn (after its tool ran) and ends the session with `session_expired` in
 * the middle of the third (before its tool call is complete). The session reconnects twice,
 * replays the conversation each time, and every tool runs exactly once: the figures come from
 * the sandbox's connection records, the session's counters and the agent's directory. The table's
 * waits are the times the session had no connection.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as Agents from "../Agents.js"
import type * as Sandbox from "../Sandbox.js"
import * as Voice from "../Voice.js"
import type { ScenarioResult } from "./Demo.js"

/** The model's script: one tool per turn, then a short answer. */
export const script: ReadonlyArray<Sandbox.RealtimeRule> = [
  { when: "create", calls: [{ name: "create_agent", arguments: { name: "scout" } }], text: "Agent scout is ready." },
  {
    when: "ask scout",
    calls: [{ name: "command_agent", arguments: { name: "scout", prompt: "write a haiku about retries" } }],
    text: "Scout is on it."
  },
  { when: "what did", calls: [{ name: "check_agent_result", arguments: { name: "scout" } }], text: "Scout's report is in." }
]

/** What the user says, one turn each. */
export const turns: ReadonlyArray<string> = [
  "Create an agent called scout.",
  "Ask scout to write a haiku about retries.",
  "What did scout write?"
]

/**
 * Connection 1 drops after its 43rd server event: turn 1 takes events 1-27, turn 2's user item
 * 28-29, its call 30-38, the call's output 39-40, and the answer after the call starts at 41.
 * Connection 2 (the replay takes 3-16, the lost answer 17-28, turn 3's user item 29-30) gets
 * `session_expired` after event 33, in the middle of the response that calls the third tool.
 */
export const plan: Sandbox.RealtimePlan = [{ dropAfter: 43 }, { expireAfter: 33 }]

/** Plays the scenario; the sandbox must be the one `Realtime` points at. */
export const run = (options: {
  readonly sandbox: Sandbox.Service
  readonly say: (line: string) => Effect.Effect<void>
}) =>
  Effect.scoped(Effect.gen(function*() {
    const { sandbox, say } = options
    yield* sandbox.realtime.setScript(script)
    yield* sandbox.realtime.setPlan(plan)
    const before = (yield* sandbox.realtime.connections).length
    yield* say("  the socket drops in the middle of turn 2, and the session expires in the middle of turn 3")
    const toolRuns = new Map<string, number>()
    const downtimes: Array<number> = []
    const session = yield* Voice.session({
      onEvent: (event) => {
        switch (event._tag) {
          case "FunctionCall":
            toolRuns.set(event.name, (toolRuns.get(event.name) ?? 0) + 1)
            return say(`  → ${event.name} ${event.arguments}`)
          case "ToolAnswered":
            return say(`  ← ${event.ok ? "ok" : "failed"} in ${event.ms} ms`)
          case "AssistantText":
            return say(`  assistant: ${event.text}`)
          case "Reconnected":
            downtimes.push(event.downMs)
            return say(
              `  ⚡ ${event.reason}: reconnected after ${event.downMs} ms (attempt ${event.attempt}), conversation replayed`
            )
          default:
            return Effect.void
        }
      }
    })
    const texts: Array<string> = []
    for (const turn of turns) {
      yield* say(`  you: ${turn}`)
      texts.push((yield* session.say(turn)).text)
    }
    const stats = yield* session.stats
    const connections = (yield* sandbox.realtime.connections).slice(before)
    const scouts = (yield* Agents.list).filter((agent) => agent.name === "scout")
    const operatorFiles = scouts[0] === undefined
      ? 0
      : fs.readdirSync(scouts[0].directory).filter((name) => name.startsWith("operator-")).length
    const reasons = stats.reconnects.map((reconnect) => reconnect.reason)
    const runs = Array.from(toolRuns, ([name, count]) => `${name}×${count}`)
    const ok = reasons.join() === "dropped,session_expired" &&
      texts.join("|") === "Agent scout is ready.|Scout is on it.|Scout's report is in." &&
      stats.callsRun === 3 && Array.from(toolRuns.values()).every((count) => count === 1) &&
      scouts.length === 1 && operatorFiles === 1
    return {
      attempts: connections.length,
      waits: downtimes,
      ok,
      outcome: `${turns.length} turns over ${connections.length} connections (reconnected after ${reasons.join(", ")}); ` +
        `each tool ran once: ${runs.join(", ")}`,
      details: {
        reconnects: reasons.join(", "),
        toolRuns: runs.join(", "),
        duplicateCallsSkipped: stats.callsSkipped,
        responsesRequested: stats.responsesRequested,
        operatorFiles
      }
    } satisfies Omit<ScenarioResult, "scenario" | "wallMs">
  }))
