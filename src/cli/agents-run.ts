/**
 * The bodies of `big3 agents …`, loaded on demand: the Agents service over the SQLite store at
 * `{BIG3_STATE_DIR}/big3.db`, Node's file system, the observability client (lifecycle events)
 * and the backend `BIG3_AGENT_BACKEND` picks.
 *
 * The layer is built per command and released when it ends: running commands are interrupted
 * (and recorded as such in their operator files) and events are flushed or spooled.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Agents from "../Agents.js"
import * as Errors from "../Errors.js"
import * as Runtime from "../Runtime.js"
import { CliExit, ExitCode, table } from "./shared.js"

// ---------------------------------------------------------------------------------------------
// The backend switch and the layer
// ---------------------------------------------------------------------------------------------

/** The backends `BIG3_AGENT_BACKEND` can name. */
export const backendKinds = ["claude", "scripted", "scripted-fail", "scripted-hang"] as const
export type BackendKind = (typeof backendKinds)[number]

/** `BIG3_AGENT_BACKEND`: `claude` (default) or one of the scripted backends for demos and tests. */
export const backendConfig: Config.Config<BackendKind> = Config.literal(...backendKinds)("BIG3_AGENT_BACKEND").pipe(
  Config.withDefault<BackendKind>("claude")
)

/** The scripts of the scripted backends. */
export const scripts: Record<Exclude<BackendKind, "claude">, Agents.Script> = {
  // The default script: a progress line, a text and a successful result echoing the prompt.
  scripted: {},
  "scripted-fail": {
    run: (input) =>
      Stream.make<Array<Agents.AgentMessage>>(
        Agents.ProgressMessage.make({ message: `working in ${input.cwd}` }),
        Agents.ResultMessage.make({
          text: `Could not do: ${input.prompt}`,
          isError: true,
          subtype: "error_during_execution",
          costUsd: 0
        })
      )
  },
  // Never ends (until interrupted or `agent_execution` passes): for shutdown and signal tests.
  "scripted-hang": {
    run: (input) =>
      Stream.concat(
        Stream.make<Array<Agents.AgentMessage>>(Agents.ProgressMessage.make({ message: `working in ${input.cwd}` })),
        Stream.never
      )
  }
}

/** The agent backend `BIG3_AGENT_BACKEND` names (also what `big3 voice` runs its agents on). */
export const backend = Layer.unwrapEffect(
  Effect.map(backendConfig, (kind) => kind === "claude" ? Agents.claudeAgentSdk : Agents.scriptedBackend(scripts[kind]))
)

/** Agents and what they stand on (no Gemini client: agents do not need it). */
const layer = Runtime.agentsWith({ agentBackend: backend })

/**
 * Runs `body` with the Agents service. Its failures (and a store that cannot be opened) print as
 * `big3 agents: <Tag>: <message>` and exit 1; configuration errors go up unchanged (exit 78).
 */
const withAgents = <A, E>(
  body: Effect.Effect<A, E, Agents.Agents>
): Effect.Effect<A, CliExit | ConfigError.ConfigError> =>
  body.pipe(
    Effect.provide(layer),
    Effect.catchAll((error): Effect.Effect<never, CliExit | ConfigError.ConfigError> => {
      if (error instanceof CliExit) return Effect.fail(error)
      if (ConfigError.isConfigError(error)) return Effect.fail(error)
      return Effect.zipRight(
        Console.error(`big3 agents: ${Errors.describe(error)}`),
        Effect.fail(new CliExit({ code: ExitCode.failure, message: Errors.describe(error) }))
      )
    })
  )

// ---------------------------------------------------------------------------------------------
// create, list
// ---------------------------------------------------------------------------------------------

export const create = (input: { readonly name: string | undefined; readonly type: string; readonly json: boolean }) =>
  withAgents(Effect.gen(function*() {
    const agents = yield* Agents.Agents
    const created = yield* agents.create({ type: input.type, ...(input.name === undefined ? {} : { name: input.name }) })
    if (input.json) return yield* Console.log(JSON.stringify(created, null, 2))
    yield* Console.log(`created agent ${created.name}`)
    yield* Console.log(table([
      ["type", input.type],
      ["session", created.sessionId],
      ["directory", created.directory],
      ["greeting", created.greeting.replace(/\s+/g, " ")]
    ]))
  }))

export const list = (input: { readonly json: boolean }) =>
  withAgents(Effect.gen(function*() {
    const agents = yield* (yield* Agents.Agents).list
    if (input.json) {
      const rows = agents.map(({ createdAt, runningCommands: _running, ...agent }) => ({
        ...agent,
        createdAt: createdAt.toISOString()
      }))
      return yield* Console.log(JSON.stringify(rows, null, 2))
    }
    if (agents.length === 0) return yield* Console.log("no agents")
    yield* Console.log(table([
      ["NAME", "TYPE", "SESSION", "CREATED", "DIRECTORY"],
      ...agents.map((agent) => [agent.name, agent.type, agent.sessionId, agent.createdAt.toISOString(), agent.directoryRecorded ? agent.directory : `${agent.directory} (not recorded)`])
    ]))
  }))

// ---------------------------------------------------------------------------------------------
// command
// ---------------------------------------------------------------------------------------------

/** The status line of an operator file ("running", "completed", "failed", "timed out", "interrupted"). */
export const statusOf = (content: string): string | undefined => /^- Status: (.+)$/m.exec(content)?.[1]?.trim()

const pollInterval = "200 millis"

/**
 * Polls the operator file until its status is no longer `running`. The command runs in this
 * process; if it is gone while the file still says `running` (its last write failed, see the log),
 * waiting longer would wait forever.
 */
const awaitOutcome = (agents: Agents.Service, name: string, file: string) =>
  Effect.gen(function*() {
    while (true) {
      const current = yield* agents.result(name, file)
      const status = statusOf(current.content)
      if (status !== "running") return { ...current, status }
      const agent = (yield* agents.list).find((agent) => agent.name === name)
      if (agent !== undefined && agent.runningCommands === 0) {
        const last = yield* agents.result(name, file)
        const lastStatus = statusOf(last.content)
        if (lastStatus !== "running") return { ...last, status: lastStatus }
        const message = `the command stopped without recording its outcome in ${file} (see the log above)`
        yield* Console.error(`big3 agents: ${message}`)
        return yield* new CliExit({ code: ExitCode.failure, message })
      }
      yield* Effect.sleep(pollInterval)
    }
  })

/**
 * Starts a command and prints its operator file path at once, then stays until the command ends
 * (the agent works inside this process: leaving would interrupt it). With `wait`, prints the
 * operator file at the end and exits 1 unless it completed.
 */
export const command = (input: { readonly name: string; readonly prompt: string; readonly wait: boolean }) =>
  withAgents(Effect.gen(function*() {
    const agents = yield* Agents.Agents
    const { operatorFile } = yield* agents.command(input.name, input.prompt)
    yield* Console.log(operatorFile)
    const outcome = yield* awaitOutcome(agents, input.name, operatorFile)
    if (!input.wait) {
      return yield* Console.error(`big3 agents: the command of ${input.name} ended: ${outcome.status ?? "unknown status"}`)
    }
    yield* Console.log(outcome.content.trimEnd())
    if (outcome.status !== "completed") {
      const message = `the command of ${input.name} ended: ${outcome.status ?? "unknown status"} (${operatorFile})`
      yield* Console.error(`big3 agents: ${message}`)
      return yield* new CliExit({ code: ExitCode.failure, message })
    }
  }))

// ---------------------------------------------------------------------------------------------
// result, delete
// ---------------------------------------------------------------------------------------------

export const result = (input: { readonly name: string; readonly file: string | undefined; readonly json: boolean }) =>
  withAgents(Effect.gen(function*() {
    const found = yield* (yield* Agents.Agents).result(input.name, input.file)
    yield* Console.log(input.json ? JSON.stringify({ ...found, status: statusOf(found.content) ?? null }, null, 2) : found.content.trimEnd())
  }))

export const remove = (name: string, options: { readonly keepDirectory: boolean }) =>
  withAgents(Effect.gen(function*() {
    yield* (yield* Agents.Agents).delete(name, options)
    yield* Console.log(options.keepDirectory ? `deleted agent ${name} (its directory was kept)` : `deleted agent ${name}`)
  }))
