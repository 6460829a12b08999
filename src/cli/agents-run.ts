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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import { processIsGone } from "../internal/processAlive.js"
import * as Agents from "../Agents.js"
import * as Errors from "../Errors.js"
import * as ReliabilityConfig from "../ReliabilityConfig.js"
import * as Runner from "../Runner.js"
import * as Runtime from "../Runtime.js"
import * as Store from "../Store.js"
import { CliExit, ExitCode, failCommand, table } from "./shared.js"

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

/**
 * `BIG3_SCRIPTED_DELAY`: how long a scripted command works (after its first progress line)
 * before it answers; seconds (`2.5`) or a duration (`"1500 millis"`); default 0. Crash tests and
 * demos use it to keep a command in flight without any key.
 */
export const scriptedDelayConfig: Config.Config<Duration.Duration> = Config.string("BIG3_SCRIPTED_DELAY").pipe(
  Config.option,
  Config.mapOrFail((value) => {
    if (Option.isNone(value) || value.value.trim() === "" || /^0+(\.0+)?$/.test(value.value.trim())) {
      return Either.right(Duration.zero)
    }
    return Option.match(ReliabilityConfig.parseDuration(value.value), {
      onNone: () =>
        Either.left(
          ConfigError.InvalidData(
            ["BIG3_SCRIPTED_DELAY"],
            `BIG3_SCRIPTED_DELAY: expected seconds (e.g. 2.5) or a duration (e.g. "1500 millis"), got ${JSON.stringify(value.value.slice(0, 40))}`
          )
        ),
      onSome: Either.right
    })
  })
)

/** A scripted backend's script with `delay` applied to its run. */
export const scriptWithDelay = (kind: Exclude<BackendKind, "claude">, delay: Duration.Duration): Agents.Script => {
  const script = scripts[kind]
  return { ...script, run: Agents.delayedRun(script.run ?? Agents.scriptedRun, delay) }
}

/** The agent backend `BIG3_AGENT_BACKEND` names (also what `big3 voice` and `big3 serve` run agents on). */
export const backend = Layer.unwrapEffect(
  Effect.map(
    Config.all([backendConfig, scriptedDelayConfig]),
    ([kind, delay]) => kind === "claude" ? Agents.claudeAgentSdk : Agents.scriptedBackend(scriptWithDelay(kind, delay))
  )
)

/** Agents and what they stand on (no Gemini client: agents do not need it). */
const layer = Runtime.agentsWith({ agentBackend: backend })

// ---------------------------------------------------------------------------------------------
// Where the agents are driven: a runner, or this process
// ---------------------------------------------------------------------------------------------

/** What the subcommands need, whether a runner or this process does the work. */
interface Ops {
  readonly create: (input: { readonly name?: string | undefined; readonly type: string }) => Effect.Effect<Agents.Created, Agents.AgentsError>
  readonly command: (name: string, prompt: string) => Effect.Effect<{ readonly operatorFile: string }, Agents.AgentsError>
  readonly result: (name: string, file?: string | undefined) => Effect.Effect<Agents.OperatorFileContent, Agents.AgentsError>
  readonly list: Effect.Effect<ReadonlyArray<Agents.Agent>, Agents.AgentsError>
  readonly delete: (name: string, options: { readonly keepDirectory: boolean }) => Effect.Effect<void, Agents.AgentsError>
}

/** A runner that answers, or why the work stays in this process. */
type Where =
  | { readonly _tag: "Runner"; readonly remote: Runner.Remote }
  | { readonly _tag: "InProcess"; readonly why: string }

/**
 * The runner of this state directory (`runner.json`), if it answers within `http_request_short`.
 * No file, or no answer from a runner whose process is gone (killed without cleaning up): this
 * process. A runner that refuses the file's token, or is alive but does not answer, is an error,
 * not a reason to bypass it.
 */
const locate = Effect.gen(function*() {
  const stateDir = yield* Store.stateDir
  const found = yield* Runner.connect(stateDir)
  if (Option.isNone(found)) {
    return { _tag: "InProcess", why: `no runner is up (no ${path.join(stateDir, Runner.stateFileName)})` } satisfies Where
  }
  const remote = found.value
  const probe = yield* remote.info.pipe(
    Effect.timeoutFail({
      duration: yield* ReliabilityConfig.timeout("http_request_short"),
      onTimeout: () => new Errors.NetworkError({ service: "runner", message: `the runner at ${remote.url} did not answer in time` })
    }),
    Effect.either
  )
  if (Either.isRight(probe)) return { _tag: "Runner", remote } satisfies Where
  // Nobody answering is a runner gone; anything else (a refused token, the runner's own failure)
  // is the runner's answer, not a reason to bypass it.
  if (probe.left._tag !== "NetworkError") return yield* Effect.fail(probe.left)
  // A runner that is alive but slow (overloaded, paused) is not bypassed: a command started here
  // would not be durable, and the runner may still take the same work.
  if (!processIsGone(remote.contents.pid)) {
    return yield* Effect.fail(
      new Errors.NetworkError({
        service: "runner",
        message: `the runner at ${remote.url} (pid ${remote.contents.pid}) did not answer in time, but it is still ` +
          `running, so nothing was started in this process: try again, or stop that runner. If pid ` +
          `${remote.contents.pid} is not a big3 runner, remove ${Runner.stateFileName}`
      })
    )
  }
  return { _tag: "InProcess", why: `no runner answers at ${remote.url} (${Runner.stateFileName} is stale)` } satisfies Where
}).pipe(Effect.provide(ReliabilityConfig.layer))

/**
 * Runs `body` against the runner of this state directory, or else against an Agents service in
 * this process. Failures (and a store that cannot be opened) print as
 * `big3 agents: <Tag>: <message>` and exit 1; configuration errors go up unchanged (exit 78).
 */
const withAgents = <A, E>(
  body: (ops: Ops, where: Where) => Effect.Effect<A, E>
): Effect.Effect<A, CliExit | ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const where = yield* locate
    if (where._tag === "Runner") return yield* body(where.remote, where)
    return yield* Effect.flatMap(Agents.Agents, (agents) => body(agents, where)).pipe(Effect.provide(layer))
  }).pipe(
    Effect.scoped,
    Effect.catchAll(failCommand("agents"))
  )

// ---------------------------------------------------------------------------------------------
// create, list
// ---------------------------------------------------------------------------------------------

export const create = (input: { readonly name: string | undefined; readonly type: string; readonly json: boolean }) =>
  withAgents((agents) =>
    Effect.gen(function*() {
      const created = yield* agents.create({ type: input.type, ...(input.name === undefined ? {} : { name: input.name }) })
      if (input.json) return yield* Console.log(JSON.stringify(created, null, 2))
      yield* Console.log(`created agent ${created.name}`)
      yield* Console.log(table([
        ["type", input.type],
        ["session", created.sessionId],
        ["directory", created.directory],
        ["greeting", created.greeting.replace(/\s+/g, " ")]
      ]))
    })
  )

export const list = (input: { readonly json: boolean }) =>
  withAgents((ops) =>
    Effect.gen(function*() {
      const agents = yield* ops.list
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
    })
  )

// ---------------------------------------------------------------------------------------------
// command
// ---------------------------------------------------------------------------------------------

/** The status line of an operator file ("running", "completed", "failed", "timed out", "interrupted"). */
export const statusOf = (content: string): string | undefined => /^- Status: (.+)$/m.exec(content)?.[1]?.trim()

const pollInterval = "200 millis"

/**
 * Polls the operator file until its status is no longer `running`. For a command in this
 * process: if it is gone while the file still says `running` (its last write failed, see the
 * log), waiting longer would wait forever. A runner's command resumes wherever its agent goes, so
 * its file is polled until it ends.
 */
const awaitOutcome = (ops: Ops, where: Where, name: string, file: string) =>
  Effect.gen(function*() {
    while (true) {
      const current = yield* ops.result(name, file)
      const status = statusOf(current.content)
      if (status !== "running") return { ...current, status }
      if (where._tag === "InProcess") {
        const agent = (yield* ops.list).find((agent) => agent.name === name)
        if (agent !== undefined && agent.runningCommands === 0) {
          const last = yield* ops.result(name, file)
          const lastStatus = statusOf(last.content)
          if (lastStatus !== "running") return { ...last, status: lastStatus }
          const message = `the command stopped without recording its outcome in ${file} (see the log above)`
          yield* Console.error(`big3 agents: ${message}`)
          return yield* new CliExit({ code: ExitCode.failure, message })
        }
      }
      yield* Effect.sleep(pollInterval)
    }
  })

/**
 * Starts a command and prints its operator file path at once. On a runner it returns then (the
 * runner carries the command to its end, across restarts); in this process it stays until the
 * command ends (leaving would interrupt it), and says so on stderr. With `wait`, prints the
 * operator file at the end and exits 1 unless it completed.
 */
export const command = (input: { readonly name: string; readonly prompt: string; readonly wait: boolean }) =>
  withAgents((agents, where) =>
    Effect.gen(function*() {
      const { operatorFile } = yield* agents.command(input.name, input.prompt)
      yield* Console.log(operatorFile)
      if (where._tag === "InProcess") {
        yield* Console.error(`big3 agents: ${where.why}: the command runs in this process, which stays until it ends`)
      }
      if (where._tag === "Runner" && !input.wait) return
      const outcome = yield* awaitOutcome(agents, where, input.name, operatorFile)
      if (!input.wait) {
        return yield* Console.error(`big3 agents: the command of ${input.name} ended: ${outcome.status ?? "unknown status"}`)
      }
      yield* Console.log(outcome.content.trimEnd())
      if (outcome.status !== "completed") {
        const message = `the command of ${input.name} ended: ${outcome.status ?? "unknown status"} (${operatorFile})`
        yield* Console.error(`big3 agents: ${message}`)
        return yield* new CliExit({ code: ExitCode.failure, message })
      }
    })
  )

// ---------------------------------------------------------------------------------------------
// result, delete
// ---------------------------------------------------------------------------------------------

export const result = (input: { readonly name: string; readonly file: string | undefined; readonly json: boolean }) =>
  withAgents((agents) =>
    Effect.gen(function*() {
      const found = yield* agents.result(input.name, input.file)
      yield* Console.log(input.json ? JSON.stringify({ ...found, status: statusOf(found.content) ?? null }, null, 2) : found.content.trimEnd())
    })
  )

export const remove = (name: string, options: { readonly keepDirectory: boolean }) =>
  withAgents((agents) =>
    Effect.gen(function*() {
      yield* agents.delete(name, options)
      yield* Console.log(options.keepDirectory ? `deleted agent ${name} (its directory was kept)` : `deleted agent ${name}`)
    })
  )
