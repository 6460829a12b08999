/**
 * The `Agents` service's implementation: create, command, result, list and delete Claude agents.
 * The tag and the layers are in `Agents.ts`.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { SqlClient } from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type { Big3Error } from "../Errors.js"
import { InvalidRequest, NotFound, OperationTimeout } from "../Errors.js"
import { Observability } from "../Observability.js"
import { ReliabilityConfig } from "../ReliabilityConfig.js"
import * as Resilience from "../Resilience.js"
import { AgentBackend } from "./Backend.js"
import { AgentName } from "./Domain.js"
import {
  AgentExists,
  AgentStorageError,
  InvalidAgentName,
  namePattern,
  RegistryCorrupt,
  UnsafeAgentPath,
  validateName
} from "./Domain.js"
import * as Command from "./Command.js"
import * as Directory from "./Directory.js"
import { preview } from "./Command.js"
import * as Host from "./Host.js"
import * as OperatorFile from "./OperatorFile.js"
import * as Records from "./Records.js"
import * as Registry from "./Registry.js"

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/** A registered agent, as `list` shows it. */
export interface Agent {
  readonly name: string
  readonly type: string
  readonly sessionId: string
  /** The agent's working directory (absolute), as the registry recorded it. */
  readonly directory: string
  /**
   * False for an agent registered by an older big3, which did not record its directory:
   * `directory` is then where the current settings put it, and `delete` removes no directory.
   */
  readonly directoryRecorded: boolean
  readonly createdAt: Date
  readonly greeting: string
  /**
   * Commands of this agent running now: in this process, or, for a runner's service
   * (`layerDurable`), on any runner (as the command records say).
   */
  readonly runningCommands: number
}

/** What `create` returns. */
export interface Created {
  readonly name: string
  readonly sessionId: string
  readonly directory: string
  readonly greeting: string
}

/** What `result` returns: the operator file's absolute path and its content. */
export interface OperatorFileContent {
  readonly file: string
  readonly content: string
}

/** Failures of the registry itself. */
export type RegistryError = RegistryCorrupt | AgentStorageError

/** Every failure the service can report. */
export type AgentsError = Big3Error | InvalidAgentName | AgentExists | RegistryError | UnsafeAgentPath

/** Options of `delete`. */
export interface DeleteOptions {
  /**
   * Remove only the registry entry and leave the directory alone: for agents registered by an
   * older big3 (whose directory was never recorded) or a directory to be kept. Default false.
   */
  readonly keepDirectory?: boolean | undefined
}

export interface Service {
  /**
   * Creates an agent: a validated unique name (`agent-<8 hex>` when none is given), its
   * directory `{agents dir}/<name>/`, a greeting session (retried with policy `anthropic`,
   * breaker `anthropic`) and a registry entry. Bounded by `agent_creation`; a create that fails
   * or times out leaves no entry and removes the directory it made.
   */
  readonly create: (input: {
    readonly name?: string | undefined
    readonly type: string
  }) => Effect.Effect<Created, Big3Error | InvalidAgentName | AgentExists | RegistryError>
  /**
   * Prepares an operator file (bounded by `operator_file_prep`) and starts the prompt in the
   * background (bounded by `agent_execution`); returns at once with the file's absolute path.
   * Progress (at most one rewrite per `progressInterval`), the result, a failure or a timeout are
   * written into the file. `UnsafeAgentPath` when the agent's directory is now a symbolic link.
   */
  readonly command: (
    name: string,
    prompt: string
  ) => Effect.Effect<
    { readonly operatorFile: string },
    NotFound | InvalidRequest | OperationTimeout | RegistryError | UnsafeAgentPath
  >
  /**
   * An operator file of the agent: `operatorFile` (a file name or the path `command` returned)
   * or else the latest. A file outside the agent's directory is refused (`InvalidRequest`), and
   * so is a symbolic link, or a directory that became one (`UnsafeAgentPath`): never followed.
   */
  readonly result: (
    name: string,
    operatorFile?: string | undefined
  ) => Effect.Effect<OperatorFileContent, NotFound | InvalidRequest | OperationTimeout | RegistryError | UnsafeAgentPath>
  /** Every registered agent, oldest first. An unreadable registry row fails with `RegistryCorrupt`. */
  readonly list: Effect.Effect<ReadonlyArray<Agent>, RegistryError>
  /**
   * Deletes an agent: interrupts its running commands, removes its directory (operator files
   * included), then its registry entry. `NotFound` for an unknown name. Only the directory the
   * registry recorded is removed, only inside the agents root it was created under, never through
   * a symbolic link, whatever the current settings say; otherwise `UnsafeAgentPath` and nothing
   * changes (an agent from an older big3, which recorded no directory, needs `keepDirectory`).
   */
  readonly delete: (
    name: string,
    options?: DeleteOptions | undefined
  ) => Effect.Effect<void, NotFound | RegistryError | UnsafeAgentPath>
}

/** Options of `make`. */
export interface Options {
  /** Where new agents' directories go. Default: `BIG3_AGENTS_DIR`, else `{BIG3_STATE_DIR}/agents`. */
  readonly agentsDir?: string | undefined
  /** The least time between two progress rewrites of an operator file. Default 1 second. */
  readonly progressInterval?: Duration.DurationInput | undefined
  /**
   * The runner a durable command's attempt runs on (`host:port (pid N)`), written into its
   * operator file at each attempt, so a command another runner took over says so. Default: none.
   */
  readonly runner?: string | undefined
}

const typePattern = /^[A-Za-z0-9_.:-]{1,64}$/

// ---------------------------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------------------------

/** What the service needs. */
export type Requirements =
  | ReliabilityConfig
  | CircuitBreaker.CircuitBreaker
  | Observability
  | AgentBackend
  | FileSystem.FileSystem
  | Path.Path
  | SqlClient

/** Builds the service. Creates the `agents` table when missing. */
export const make = (
  options: Options = {}
): Effect.Effect<Service, ConfigError.ConfigError | AgentStorageError, Requirements | Scope.Scope> =>
  Effect.map(build(options, undefined), ({ service }) => service)

/**
 * Builds a runner's service and its command host: commands are recorded (the `agent_commands`
 * table is created when missing) and handed to `dispatch`; the host executes them.
 */
export const makeDurable = (
  dispatch: Host.Dispatch,
  options: Options = {}
): Effect.Effect<
  { readonly service: Service; readonly host: Host.Service },
  ConfigError.ConfigError | AgentStorageError,
  Requirements | Scope.Scope
> =>
  Effect.gen(function*() {
    const records = yield* Records.make
    const { internals, service } = yield* build(options, { dispatch, records })
    return { service, host: Host.make({ ...internals, records, runner: options.runner }) }
  })

const build = (
  options: Options,
  durable: { readonly dispatch: Host.Dispatch; readonly records: Records.Records } | undefined
): Effect.Effect<
  { readonly service: Service; readonly internals: Omit<Host.Internals, "records" | "runner"> },
  ConfigError.ConfigError | AgentStorageError,
  Requirements | Scope.Scope
> =>
  Effect.gen(function*() {
    const config = yield* ReliabilityConfig
    const observability = yield* Observability
    const backend = yield* AgentBackend
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const registry = yield* Registry.make
    const records = durable?.records
    const agentsRoot = path.resolve(options.agentsDir ?? (yield* Directory.agentsDirConfig))
    const files = Directory.make(fs, path)

    const creationTimeout = config.timeoutOf("agent_creation")
    const executionTimeout = config.timeoutOf("agent_execution")
    const cleanupTimeout = config.timeoutOf("agent_cleanup")
    const withCreationTimeout = Resilience.timeoutAfter(creationTimeout, "agent_creation", "agents")
    const withPrepTimeout = Resilience.timeoutAfter(config.timeoutOf("operator_file_prep"), "operator_file_prep", "agents")
    const withExecutionTimeout = Resilience.timeoutAfter(executionTimeout, "agent_execution", "agents")
    const withReadTimeout = Resilience.timeoutAfter(config.timeoutOf("file_read"), "file_read", "agents")
    // A reservation older than this belongs to a create that died without cleaning up.
    const staleAfter = Duration.toMillis(creationTimeout) + Duration.toMillis(cleanupTimeout) + 60_000

    // The greeting goes through the one protection pipeline (claude_code_create per attempt,
    // breaker and policy `anthropic`); its retries never wait past the create's own deadline.
    const protectGreeting = yield* Resilience.makeProtect({
      operation: "claude_code_create",
      policy: "anthropic",
      breaker: "anthropic"
    })
    const startSession = (input: { name: string; type: string; cwd: string }, startedAt: number) =>
      protectGreeting(backend.startSession(input), { deadlineAt: startedAt + Duration.toMillis(creationTimeout) })

    const emit = Command.makeEmit(observability)
    // Background commands, keyed `<agent>/<operator file name>`; interrupted with the layer.
    const commands = yield* FiberMap.make<string>()
    const commandContext: Command.Context = {
      backend,
      files,
      emit,
      withExecutionTimeout,
      progressInterval: Duration.decode(options.progressInterval ?? OperatorFile.progressInterval)
    }
    // Serializes "look up, prepare, fork" (command) against "interrupt, remove" (delete).
    const lock = yield* Effect.makeSemaphore(1)
    let sequence = 0
    // Agents being deleted: their interrupted durable commands are stopped, not handed over.
    const deleting = new Set<string>()

    /** Where a registered agent lives: as recorded (older entries: under the current agents root). */
    const locate = (agent: Registry.AgentRecord) => files.locate(agent.name, agent.location, agentsRoot)

    const unique = Command.uniqueSuffix

    const notFound = (name: string, why?: string) =>
      new NotFound({
        service: "agents",
        message: `no agent named ${JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)}` +
          (why === undefined ? "" : ` (${why})`)
      })

    /** A ready agent, or `NotFound`. */
    const requireAgent = (name: string): Effect.Effect<Registry.AgentRecord, NotFound | RegistryError> =>
      namePattern.test(name)
        ? Effect.flatMap(registry.lookup(name), (found) => {
          if (Option.isNone(found)) return Effect.fail(notFound(name))
          if (found.value._tag === "Creating") return Effect.fail(notFound(name, "it is still being created"))
          return Effect.succeed(found.value.agent)
        })
        : Effect.fail(notFound(name, "not a valid agent name"))

    const removeDirectory = (location: Directory.Location): Effect.Effect<void, AgentStorageError | UnsafeAgentPath> =>
      files.remove(location).pipe(
        Effect.interruptible,
        Resilience.timeoutAfter(cleanupTimeout, "agent_cleanup", "agents"),
        Effect.catchTag("OperationTimeout", (error) =>
          Effect.fail(
            new AgentStorageError({
              service: "agents",
              agent: location.agent,
              message: `could not remove ${location.directory}: ${error.message}`
            })
          ))
      )

    // -------------------------------------------------------------------------------------------
    // create
    // -------------------------------------------------------------------------------------------

    const createNamed = (name: AgentName, type: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        // The canonical root is recorded, so the agent stays where it was made whatever the
        // settings say later, and a link put in its path later is noticed.
        const location = files.locationIn(yield* files.prepareRoot(name, agentsRoot), name)
        const directory = location.directory
        const token = yield* unique
        // Whether this create may have made the directory (so a rollback removes it).
        let madeDirectory = false

        const rollback = (reservation: Registry.Reservation) =>
          Effect.all([
            madeDirectory ? removeDirectory(location) : Effect.void,
            registry.release(reservation)
          ], { discard: true, concurrency: "unbounded" }).pipe(
            Effect.catchAll((error) => Effect.logError(`rolling back the create of agent ${name}: ${error.message}`))
          )

        return yield* Effect.acquireUseRelease(
          registry.reserve({
            name,
            type,
            token,
            now,
            staleBefore: now - staleAfter,
            location: { root: location.root, directory }
          }),
          (reservation) =>
            Effect.gen(function*() {
              // The leftover of a create that died, only when it recorded this very directory.
              const leftover = Option.exists(
                reservation.staleLocation,
                (stale) => stale.directory === directory && stale.root === location.root
              )
              if (leftover) yield* Effect.ignore(removeDirectory(location))
              madeDirectory = true
              yield* fs.makeDirectory(directory).pipe(
                Effect.catchAll((error): Effect.Effect<never, AgentExists | AgentStorageError> => {
                  if (error._tag === "SystemError" && error.reason === "AlreadyExists") {
                    madeDirectory = false
                    return Effect.fail(
                      new AgentExists({
                        service: "agents",
                        name,
                        message: `the directory ${directory} already exists but no agent ${JSON.stringify(name)} is ` +
                          `registered; remove the directory or pick another name`
                      })
                    )
                  }
                  return Effect.fail(
                    new AgentStorageError({ service: "agents", agent: name, message: `could not create ${directory}: ${error.message}` })
                  )
                })
              )
              const session = yield* startSession({ name, type, cwd: directory }, now)
              const record = yield* registry.complete(reservation, session)
              yield* emit("AgentCreated", record.sessionId, {
                agent: name,
                type,
                directory,
                greeting: preview(record.greeting)
              }, `agent ${name} created`)
              return { name, sessionId: record.sessionId, directory, greeting: record.greeting } satisfies Created
            }),
          (reservation, exit) => Exit.isSuccess(exit) ? Effect.void : rollback(reservation)
        )
      })

    const create: Service["create"] = Effect.fn("Agents.create")(function*(input) {
      if (!typePattern.test(input.type)) {
        return yield* Effect.fail(
          new InvalidRequest({
            service: "agents",
            message: `invalid agent type ${JSON.stringify(input.type.slice(0, 80))}: use 1–64 letters, digits, '-', '_', '.' or ':'`
          })
        )
      }
      const attempt = (name: AgentName) =>
        createNamed(name, input.type).pipe(
          withCreationTimeout,
          Effect.tapError((error) =>
            emit("AgentCreateFailed", name, { agent: name, type: input.type, error_tag: error._tag, error: error.message }))
        )
      if (input.name !== undefined) return yield* attempt(yield* validateName(input.name))
      // A generated name: try again on the (unlikely) collision.
      const generated = Effect.flatMap(
        Random.nextIntBetween(0, 0x7fffffff),
        (n) => attempt(AgentName.make(`agent-${n.toString(16).padStart(8, "0")}`))
      )
      return yield* Effect.retry(generated, { times: 3, while: (error) => error._tag === "AgentExists" })
    })

    // -------------------------------------------------------------------------------------------
    // command
    // -------------------------------------------------------------------------------------------

    const command: Service["command"] = Effect.fn("Agents.command")(function*(name, prompt) {
      if (prompt.trim() === "") {
        return yield* Effect.fail(new InvalidRequest({ service: "agents", message: "the prompt is empty" }))
      }
      const prepared = yield* lock.withPermits(1)(Effect.gen(function*() {
        const agent = yield* requireAgent(name)
        const location = yield* locate(agent)
        const now = yield* Clock.currentTimeMillis
        let fileName = OperatorFile.fileName(now, ++sequence)
        if (durable !== undefined) {
          yield* files.ensure(location)
          // Runners share the records: a name another runner took this millisecond is skipped.
          while (!(yield* durable.records.insert({ agent: agent.name, file: fileName, prompt, now }))) {
            fileName = OperatorFile.fileName(now, ++sequence)
          }
        }
        const file = path.join(location.directory, fileName)
        const doc = OperatorFile.makeDocument({ file: fileName, agent: agent.name, sessionId: agent.sessionId, task: prompt, now })
        yield* Effect.flatMap(unique, (suffix) => files.writeFile(location, fileName, OperatorFile.render(doc), suffix)).pipe(
          withPrepTimeout
        )
        yield* emit("AgentCommandStarted", agent.sessionId, {
          agent: agent.name,
          operator_file: file,
          prompt: preview(prompt)
        }, `command of ${agent.name} started`)
        if (durable === undefined) {
          const job = Command.job(commandContext, { agent, location, doc, fileName, file, prompt })
          yield* FiberMap.run(commands, `${agent.name}/${fileName}`, job)
        }
        return { file, command: { agent: agent.name, file: fileName, prompt, createdAt: now } }
      }))
      // Outside the lock: a durable start waits for the cluster's storage, and a delete racing it
      // is harmless (the command then finds no agent and ends as interrupted).
      if (durable !== undefined) yield* durable.dispatch.start(prepared.command)
      return { operatorFile: prepared.file }
    })

    // -------------------------------------------------------------------------------------------
    // result, list, delete
    // -------------------------------------------------------------------------------------------

    const result: Service["result"] = Effect.fn("Agents.result")(function*(name, operatorFile) {
      const agent = yield* requireAgent(name)
      const location = yield* locate(agent)
      const directory = location.directory
      let fileName: string
      if (operatorFile === undefined) {
        const latest = (yield* files.listFiles(location)).at(-1)
        if (latest === undefined) {
          return yield* Effect.fail(new NotFound({ service: "agents", message: `agent ${agent.name} has no operator files yet` }))
        }
        fileName = latest
      } else {
        // Either a bare file name or a path inside the agent's directory; nothing else.
        const resolved = path.resolve(directory, operatorFile)
        fileName = path.basename(resolved)
        if (path.dirname(resolved) !== directory || !OperatorFile.fileNamePattern.test(fileName)) {
          return yield* Effect.fail(
            new InvalidRequest({
              service: "agents",
              message: `${JSON.stringify(operatorFile.slice(0, 200))} is not an operator file of agent ${agent.name} ` +
                `(expected operator-….md in ${directory})`
            })
          )
        }
      }
      const content = yield* withReadTimeout(files.readFile(location, fileName))
      return { file: path.join(directory, fileName), content }
    })

    const runningOf = (name: string): number => {
      let count = 0
      for (const [key] of commands) if (key.startsWith(`${name}/`)) count++
      return count
    }

    const running: Effect.Effect<(name: string) => number, AgentStorageError> = records === undefined
      ? Effect.succeed(runningOf)
      : Effect.map(records.running, (counts) => (name: string) => counts.get(name) ?? 0)

    const list: Service["list"] = Effect.flatMap(Effect.zip(registry.list, running), ([entries, runningOf]) =>
      Effect.forEach(entries, (record) =>
        Effect.map(locate(record), (location): Agent => ({
          name: record.name,
          type: record.type,
          sessionId: record.sessionId,
          directory: location.directory,
          directoryRecorded: location.recorded,
          createdAt: new Date(record.createdAt),
          greeting: record.greeting,
          runningCommands: runningOf(record.name)
        })))).pipe(Effect.withSpan("Agents.list"))

    const delete_: Service["delete"] = Effect.fn("Agents.delete")(function*(name, options) {
      const keepDirectory = options?.keepDirectory === true
      return yield* lock.withPermits(1)(Effect.gen(function*() {
        const agent = yield* requireAgent(name)
        const location = yield* locate(agent)
        // A delete that will be refused stops nothing: check before interrupting commands.
        if (!keepDirectory) yield* files.checkRemovable(location)
        const keys: Array<string> = []
        for (const [key] of commands) if (key.startsWith(`${agent.name}/`)) keys.push(key)
        // Each removal interrupts the command and waits for it to record "interrupted".
        deleting.add(agent.name)
        yield* Effect.forEach(keys, (key) => FiberMap.remove(commands, key), { discard: true, concurrency: "unbounded" }).pipe(
          Effect.ensuring(Effect.sync(() => deleting.delete(agent.name)))
        )
        if (!keepDirectory) yield* removeDirectory(location)
        const removed = yield* registry.remove(agent.name)
        if (!removed) return yield* Effect.fail(notFound(name))
        // Durable commands still queued or running elsewhere find no record and end.
        if (records !== undefined) yield* records.removeAgent(agent.name)
        yield* emit("AgentDeleted", agent.sessionId, {
          agent: agent.name,
          interrupted_commands: keys.length,
          directory: location.directory,
          kept_directory: keepDirectory
        }, `agent ${agent.name} deleted`)
      }))
    })

    const service: Service = { create, command, result, list, delete: delete_ }
    const internals: Omit<Host.Internals, "records" | "runner"> = {
      context: commandContext,
      files,
      lookup: (name) =>
        Effect.map(
          Effect.catchTag(registry.lookup(name), "RegistryCorrupt", (error) =>
            Effect.fail(new AgentStorageError({ service: "agents", agent: name, message: error.message }))),
          Option.flatMap((found) => found._tag === "Ready" ? Option.some(found.agent) : Option.none())
        ),
      locate,
      commands,
      isDeleting: (name) => deleting.has(name)
    }
    return { service, internals }
  })
