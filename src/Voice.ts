/**
 * The voice orchestrator: an OpenAI Realtime session whose tools drive the Claude agents and the
 * browser agent.
 *
 * Tools (dispatched from the `function_call` items of `response.done`): `list_agents`,
 * `create_agent{name?,type?}` (default type `agentic_coding`), `command_agent{name,prompt}`,
 * `check_agent_result{name,operator_file?}`, `delete_agent{name}` → `Agents`;
 * `browser_use{task,url?}` → `BrowserAgent`. Each answer goes back as a `function_call_output`
 * (a JSON result, or `Errors.describe(error)` when the tool failed, so the model can say so),
 * then one `response.create` per round. A tool failure never ends the session.
 *
 * Events (through `Observability.emit`, `source_app` "big3", `session_id` the voice session's
 * id): `VoiceSessionStarted`, `VoiceReconnected` (reason, attempt), `ToolCalled`, `ToolAnswered`
 * (ms, ok), `VoiceSessionEnded`.
 *
 * @since 0.2.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import { Agents } from "./Agents.js"
import * as BrowserAgent from "./BrowserAgent.js"
import { Observability } from "./Observability.js"
import * as Realtime from "./Realtime.js"
import * as Tools from "./voice/Tools.js"

export { defaultAgentType, definitions as tools, maxResultChars } from "./voice/Tools.js"
export type { ToolAnswer, ToolError } from "./voice/Tools.js"

/** The instructions a session gets unless told otherwise. */
export const defaultInstructions = [
  "You are the orchestrator of the Big Three: you drive Claude coding agents and a Gemini browser agent.",
  "Use create_agent, command_agent, check_agent_result, list_agents and delete_agent for coding work,",
  "browser_use for anything on the web. Commands run in the background: check results when asked.",
  "Keep answers short. When a tool fails, say what failed and why."
].join(" ")

/** A tool call answered: what the model got back, whether the tool worked, and how long it took. */
export interface ToolAnswered {
  readonly _tag: "ToolAnswered"
  readonly callId: string
  readonly name: string
  readonly output: string
  readonly ok: boolean
  readonly ms: number
}

/** What a voice session reports as it goes: the Realtime session's events, and tool answers. */
export type Event = Realtime.SessionEvent | ToolAnswered

export interface SessionOptions {
  /** Default `defaultInstructions`. */
  readonly instructions?: string | undefined
  /** Told about everything as it happens, in order (for printing). Must not call the session. */
  readonly onEvent?: ((event: Event) => Effect.Effect<void>) | undefined
}

/** A session's figures: the Realtime session's, plus turns and tool outcomes. */
export interface Stats extends Realtime.Stats {
  readonly turns: number
  readonly toolsOk: number
  readonly toolsFailed: number
}

export interface Session {
  /** The id its events carry (`session_id`). */
  readonly id: string
  /** One user turn; see `Realtime.Session.send`. */
  readonly say: (text: string) => Effect.Effect<Realtime.Turn, Realtime.RealtimeError>
  readonly stats: Effect.Effect<Stats>
  /** Waits until the session is lost, then fails with why; see `Realtime.Session.lost`. */
  readonly lost: Effect.Effect<never, Realtime.RealtimeError>
}

export interface Service {
  /**
   * Opens a session in the current scope: connects (retrying with policy `network`), offers the
   * tools, emits `VoiceSessionStarted`; closing the scope closes the socket and emits
   * `VoiceSessionEnded`. Fails when the first connection cannot be made.
   */
  readonly session: (options?: SessionOptions) => Effect.Effect<Session, Realtime.RealtimeError, Scope.Scope>
  /** Runs one tool call as the model made it; never fails (a failure is answered as text). */
  readonly runTool: (call: Realtime.FunctionCall) => Effect.Effect<Tools.ToolAnswer>
}

/** The orchestrator service tag. */
export class Voice extends Context.Tag("big3/Voice")<Voice, Service>() {}

/** What the orchestrator needs. */
export type Requirements = Realtime.Realtime | Agents | BrowserAgent.BrowserAgent | Observability

/** Builds the orchestrator; reads its dependencies once, here. */
export const make: Effect.Effect<Service, never, Requirements> = Effect.gen(function*() {
  const realtime = yield* Realtime.Realtime
  const agents = yield* Agents
  const browser = yield* BrowserAgent.BrowserAgent
  const observability = yield* Observability
  const dispatch = Tools.makeDispatch(agents, browser)

  const session = Effect.fn("Voice.session")(function*(options: SessionOptions = {}) {
    const id = `voice-${(yield* Random.nextIntBetween(0, 0x7fffffff)).toString(16).padStart(8, "0")}`
    const onEvent = options.onEvent ?? (() => Effect.void)
    const emit = (type: string, payload: Record<string, unknown>, summary?: string) =>
      observability.emit({
        source_app: "big3",
        session_id: id,
        hook_event_type: type,
        payload,
        ...(summary === undefined ? {} : { summary })
      })
    const counts = { turns: 0, toolsOk: 0, toolsFailed: 0 }

    const onFunctionCall = (call: Realtime.FunctionCall) =>
      Effect.gen(function*() {
        yield* emit("ToolCalled", { tool: call.name, call_id: call.callId, arguments: call.arguments }, `${call.name} called`)
        const startedAt = yield* Clock.currentTimeMillis
        const answer = yield* dispatch(call)
        const ms = (yield* Clock.currentTimeMillis) - startedAt
        if (answer.ok) counts.toolsOk++
        else counts.toolsFailed++
        yield* emit("ToolAnswered", {
          tool: call.name,
          call_id: call.callId,
          ms,
          ok: answer.ok,
          ...(answer.error === undefined ? {} : { error: answer.error })
        }, `${call.name} ${answer.ok ? "answered" : "failed"} in ${ms} ms`)
        yield* onEvent({ _tag: "ToolAnswered", callId: call.callId, name: call.name, output: answer.output, ok: answer.ok, ms })
        return answer.output
      })

    const connected = yield* realtime.connect({
      instructions: options.instructions ?? defaultInstructions,
      tools: Tools.definitions,
      onFunctionCall,
      onEvent: (event) =>
        Effect.zipRight(
          event._tag === "Reconnected"
            ? emit(
              "VoiceReconnected",
              {
                reason: event.reason,
                attempt: event.attempt,
                connection: event.connection,
                cause: event.cause,
                down_ms: event.downMs
              },
              `reconnected after ${event.reason} (attempt ${event.attempt})`
            )
            : Effect.void,
          onEvent(event)
        )
    })
    yield* emit("VoiceSessionStarted", { model: realtime.model, url: realtime.url, tools: Tools.names }, "voice session started")

    const stats: Effect.Effect<Stats> = Effect.map(connected.stats, (realtimeStats) => ({ ...realtimeStats, ...counts }))
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(stats, (final) =>
        emit("VoiceSessionEnded", {
          turns: final.turns,
          connections: final.connections,
          reconnects: final.reconnects.length,
          tool_calls: final.callsRun,
          duplicate_calls_skipped: final.callsSkipped,
          tools_failed: final.toolsFailed
        }, `voice session ended after ${final.turns} turns`))
    )

    return {
      id,
      say: (text: string) => Effect.zipRight(Effect.sync(() => void counts.turns++), connected.send(text)),
      stats,
      lost: connected.lost
    } satisfies Session
  })

  return Voice.of({ session, runTool: dispatch })
})

/** The orchestrator; needs `Realtime`, `Agents`, `BrowserAgent` and `Observability`. */
export const layer: Layer.Layer<Voice, never, Requirements> = Layer.effect(Voice, make)

/**
 * A `BrowserAgent` for builds without one: every `browser_use` is answered (to the model) with a
 * `BrowserError` saying so. Not a stand-in result: the task is not done and the model is told.
 */
export const browserAgentUnavailable: Layer.Layer<BrowserAgent.BrowserAgent> = Layer.succeed(
  BrowserAgent.BrowserAgent,
  BrowserAgent.BrowserAgent.of({
    run: () =>
      Effect.fail(
        new BrowserAgent.BrowserError({ service: "browser", message: "the browser agent is not available in this build" })
      )
  })
)

/** Opens a session with the `Voice` service in context. */
export const session = (
  options?: SessionOptions
): Effect.Effect<Session, Realtime.RealtimeError, Voice | Scope.Scope> =>
  Effect.flatMap(Voice, (voice) => voice.session(options))
