/**
 * The runner's side of a durable command: the execution a runner performs when the command's
 * `Run` message reaches the agent it owns (see `Runner`). Each execution is one attempt:
 *
 * 1. it counts the attempt in the command records (`Records.begin`); a command no longer
 *    running was finished by an earlier attempt, whose outcome is re-written (its runner may have
 *    died between recording and writing) and returned, and the agent is not run again;
 * 2. it rebuilds the operator file from the task and the progress written so far, adding, from
 *    the second attempt on, "Resumed after a restart: attempt N", and on a runner that names
 *    itself, "Attempt N on runner host:port (pid P)";
 * 3. it runs the command as an in-process command does (`Command.job`), except that it writes
 *    and records only while this attempt is still the current one (a later attempt's file is
 *    never overwritten; the outcome returned is the one recorded, by whichever attempt), and that
 *    an interruption which is not a delete hands the command over (it stays running) instead of
 *    ending it.
 *
 * The execution runs as a fiber of the service's command map (so `delete` interrupts it as it
 * does an in-process command) joined by the caller: when the caller (the entity's handler) is
 * interrupted, so is the execution, which then hands the command over.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberMap from "effect/FiberMap"
import * as Option from "effect/Option"
import * as nodePath from "node:path"
import * as Command from "./Command.js"
import type * as Directory from "./Directory.js"
import type { AgentStorageError, UnsafeAgentPath } from "./Domain.js"
import * as OperatorFile from "./OperatorFile.js"
import type * as Records from "./Records.js"
import type { AgentRecord } from "./Registry.js"

/** A command to run durably: what its workflow carries. */
export interface DurableCommand {
  readonly agent: string
  /** The operator file's name (in the agent's directory). */
  readonly file: string
  readonly prompt: string
  /** When the command was given, ms since the epoch. */
  readonly createdAt: number
}

/** How a durable command ended, as recorded: the status its operator file ends with. */
export interface Outcome {
  readonly status: OperatorFile.Status
  /** The attempt that recorded it (0: the command was never begun, e.g. its agent was deleted). */
  readonly attempt: number
}

/** Where durable commands start: the runner's workflow engine. */
export interface Dispatch {
  /** Starts the recorded command durably (returns once it is persisted, not when it ends). */
  readonly start: (command: DurableCommand) => Effect.Effect<void>
}

export interface Service {
  /**
   * Executes one attempt of a durable command on this runner and returns the recorded outcome.
   * Never fails: the backend's failures are outcomes (`failed`, `timed out`); a command that
   * cannot run here (an unsafe path) ends `failed`; a store that cannot be reached is a defect, so
   * the cluster delivers the command again later rather than an outcome being made up.
   */
  readonly execute: (command: DurableCommand) => Effect.Effect<Outcome>
}

/** The command host of a runner's Agents service (`Agents.layerDurable`). */
export class CommandHost extends Context.Tag("big3/Agents/CommandHost")<CommandHost, Service>() {}

/** What the host needs from the service. */
export interface Internals {
  readonly context: Command.Context
  readonly records: Records.Records
  readonly files: Directory.Directory
  /** The agent's registry entry, or `None` when it is gone (deleted). */
  readonly lookup: (name: string) => Effect.Effect<Option.Option<AgentRecord>, AgentStorageError>
  readonly locate: (agent: AgentRecord) => Effect.Effect<Directory.Location>
  /** The service's running commands, keyed `<agent>/<file>`. */
  readonly commands: FiberMap.FiberMap<string>
  /** Whether the agent is being deleted now (its interrupted commands are stopped, not handed over). */
  readonly isDeleting: (agent: string) => boolean
  /** This runner, as each attempt names it in the operator file; none: no line. */
  readonly runner: string | undefined
}

export const make = (internals: Internals): Service => {
  const { context, files, records } = internals

  const attempt = (command: DurableCommand): Effect.Effect<Outcome, AgentStorageError | UnsafeAgentPath> =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const found = yield* internals.lookup(command.agent)
      if (Option.isNone(found)) return { status: "interrupted", attempt: 0 } satisfies Outcome
      const agent = found.value
      const location = yield* internals.locate(agent)
      yield* files.ensure(location)
      const begun = yield* records.begin(command.agent, command.file, now)
      const doc = OperatorFile.makeDocument({
        file: command.file,
        agent: agent.name,
        sessionId: agent.sessionId,
        task: command.prompt,
        now: command.createdAt
      })
      // What an earlier attempt wrote; none yet is no progress (a file that cannot be read safely
      // fails the execution, as any other access to it would).
      const earlier = yield* files.readFile(location, command.file).pipe(
        Effect.asSome,
        Effect.catchTag("NotFound", () => Effect.succeed(Option.none<string>()))
      )
      const progress = Option.match(earlier, {
        onNone: () => ({ lines: [], omitted: 0 }),
        onSome: (content) => OperatorFile.parseProgress(content, command.prompt)
      })
      doc.progress = progress.lines
      doc.omitted = progress.omitted
      const write = Effect.flatMap(
        Command.uniqueSuffix,
        (unique) => files.writeFile(location, command.file, OperatorFile.render(doc), unique)
      )

      if (Option.isNone(begun)) {
        // Finished by an earlier attempt: make sure the file says so, and run nothing.
        const record = yield* records.get(command.agent, command.file)
        if (Option.isNone(record)) return { status: "interrupted", attempt: 0 } satisfies Outcome
        const recorded = record.value
        if (recorded.status !== "running" && Option.isSome(recorded.result)) {
          const shown = Option.map(earlier, OperatorFile.statusOf)
          if (Option.getOrUndefined(shown) !== recorded.status) {
            doc.status = recorded.status
            doc.result = recorded.result.value
            doc.updatedAt = now
            yield* write
          }
        }
        return { status: recorded.status, attempt: recorded.attempts } satisfies Outcome
      }

      const number = begun.value
      if (number > 1) {
        OperatorFile.addProgress(doc, now, `Resumed after a restart: attempt ${number}`)
        yield* context.emit("AgentCommandResumed", agent.sessionId, {
          agent: agent.name,
          operator_file: nodePath.join(location.directory, command.file),
          attempt: number
        }, `command of ${agent.name} resumed (attempt ${number})`)
      }
      // Which runner ran which attempt: a command taken over by another runner says so.
      if (internals.runner !== undefined) OperatorFile.addProgress(doc, now, `Attempt ${number} on runner ${internals.runner}`)
      yield* write

      // One key per attempt: a stale attempt in this process is never mistaken for the current one.
      const key = `${agent.name}/${command.file}#${number}`
      const job = Command.job({
        ...context,
        interruption: Effect.sync(() => internals.isDeleting(agent.name) ? "stopped" : "handover"),
        record: (status, result) =>
          Effect.flatMap(Clock.currentTimeMillis, (finishedAt) =>
            records.finish({ agent: agent.name, file: command.file, attempt: number, status, result, now: finishedAt })),
        guard: records.isCurrent(agent.name, command.file, number)
      }, {
        agent,
        location,
        doc,
        fileName: command.file,
        file: nodePath.join(location.directory, command.file),
        prompt: command.prompt
      })
      const fiber = yield* FiberMap.run(internals.commands, key, job)
      // Interrupting the caller interrupts the execution (which hands the command over). The
      // execution itself may end interrupted (a delete stopped it): its outcome is recorded all
      // the same, and read below.
      yield* Fiber.await(fiber).pipe(Effect.onInterrupt(() => FiberMap.remove(internals.commands, key)))
      // The outcome is what the records say, once final: this attempt's, or (when a later attempt
      // took the command over meanwhile) that attempt's, waited for.
      const final: Effect.Effect<Option.Option<Records.CommandRecord>, AgentStorageError> = Effect.flatMap(
        records.get(command.agent, command.file),
        (found) =>
          Option.exists(found, (record) => record.status === "running")
            ? Effect.zipRight(Effect.sleep(context.progressInterval), final)
            : Effect.succeed(found)
      )
      const recorded = yield* final
      return Option.match(recorded, {
        onNone: (): Outcome => ({ status: "interrupted", attempt: number }),
        onSome: (record): Outcome => ({ status: record.status, attempt: record.attempts })
      })
    })

  const execute: Service["execute"] = (command) =>
    attempt(command).pipe(
      // A path big3 will not touch: the command cannot run here or anywhere; it ends failed.
      Effect.catchTag("UnsafeAgentPath", (error) =>
        Effect.gen(function*() {
          yield* Effect.logError(`agent ${command.agent}: cannot run ${command.file}: ${error.message}`)
          const now = yield* Clock.currentTimeMillis
          yield* records.abandon(command.agent, command.file, `Failed: UnsafeAgentPath: ${error.message}`, now)
          return { status: "failed", attempt: 0 } satisfies Outcome
        })),
      // The store is unreachable: no outcome can be recorded, so none is made up. A defect makes
      // the cluster restart the agent's entity and deliver the message again, with its backoff.
      Effect.catchTag("AgentStorageError", (error) => Effect.dieMessage(`agent ${command.agent}: ${command.file}: ${error.message}`)),
      Effect.withSpan("Agents.executeDurable", { attributes: { agent: command.agent, file: command.file } })
    )

  return { execute }
}
