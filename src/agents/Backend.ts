/**
 * The `AgentBackend` port: where the model work of an agent happens. The production adapter
 * drives the Claude Agent SDK (`ClaudeAgentSdk.ts`); `scriptedBackend` answers from a script for
 * tests and demos.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { Big3Error } from "../Errors.js"
import type { AgentMessage } from "./Domain.js"
import { ProgressMessage, ResultMessage, TextMessage } from "./Domain.js"

/** What `startSession` needs. */
export interface StartSessionInput {
  readonly name: string
  readonly type: string
  /** The agent's working directory (absolute). */
  readonly cwd: string
}

/** A new session and the agent's first words. */
export interface Session {
  readonly sessionId: string
  readonly greeting: string
}

/** What `run` needs. */
export interface RunInput {
  readonly sessionId: string
  readonly prompt: string
  readonly cwd: string
}

/**
 * The model side of an agent. `startSession` opens a session (one short greeting exchange);
 * `run` sends a prompt to it and streams what the agent does, ending with a `Result`.
 * Interrupting the stream stops the agent. Failures are in the shared taxonomy, so callers can
 * tell a rate limit (retryable) from a bad key (not).
 */
export interface Service {
  readonly startSession: (input: StartSessionInput) => Effect.Effect<Session, Big3Error>
  readonly run: (input: RunInput) => Stream.Stream<AgentMessage, Big3Error>
}

/** The backend port. */
export class AgentBackend extends Context.Tag("big3/AgentBackend")<AgentBackend, Service>() {}

/** A script for `scriptedBackend`: any part left out gets the default below. */
export interface Script {
  /** Default: session id `session-<name>`, greeting "Hello, I am <name> (<type>)." */
  readonly startSession?: ((input: StartSessionInput) => Effect.Effect<Session, Big3Error>) | undefined
  /** Default: a `Progress`, a `Text` and a successful `Result` echoing the prompt. */
  readonly run?: ((input: RunInput) => Stream.Stream<AgentMessage, Big3Error>) | undefined
}

/** The default scripted session. */
export const scriptedSession = (input: StartSessionInput): Session => ({
  sessionId: `session-${input.name}`,
  greeting: `Hello, I am ${input.name} (${input.type}).`
})

/** The default scripted run. */
export const scriptedRun = (input: RunInput): Stream.Stream<AgentMessage> =>
  Stream.make<Array<AgentMessage>>(
    ProgressMessage.make({ message: `working in ${input.cwd}` }),
    TextMessage.make({ text: `Working on: ${input.prompt}` }),
    ResultMessage.make({ text: `Done: ${input.prompt}`, isError: false, costUsd: 0 })
  )

/**
 * `run` after a pause: the first message (a `Progress`) at once, the rest after `delay`, so a
 * command stays in flight long enough to crash a runner under it. A zero delay is `run` itself.
 */
export const delayedRun = (
  run: (input: RunInput) => Stream.Stream<AgentMessage, Big3Error>,
  delay: Duration.DurationInput
) =>
(input: RunInput): Stream.Stream<AgentMessage, Big3Error> => {
  if (Duration.lessThanOrEqualTo(Duration.decode(delay), Duration.zero)) return run(input)
  return run(input).pipe(
    Stream.zipWithIndex,
    Stream.mapEffect(([message, index]) => index === 1 ? Effect.as(Effect.sleep(delay), message) : Effect.succeed(message))
  )
}

/** A backend that answers from `script`, for tests and demos. */
export const makeScripted = (script: Script = {}): Service =>
  AgentBackend.of({
    startSession: script.startSession ?? ((input) => Effect.succeed(scriptedSession(input))),
    run: script.run ?? scriptedRun
  })

/** A layer of `makeScripted(script)`. */
export const scriptedBackend = (script: Script = {}): Layer.Layer<AgentBackend> =>
  Layer.succeed(AgentBackend, makeScripted(script))
