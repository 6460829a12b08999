/**
 * One background command: stream the backend's messages into the operator file, bounded by
 * `agent_execution`, then write the outcome (completed, failed, timed out, interrupted) and
 * emit its lifecycle event.
 *
 * Progress does not rewrite the file per message (2,000 messages once rewrote a 0.32 MB file
 * 2,000 times: 575 MB). A writer fiber rewrites it at once for the first message, then at most
 * once per `progressInterval` while more arrive; the outcome is always written last, after the
 * run and its writer have stopped.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import type { Big3Error, OperationTimeout } from "../Errors.js"
import { formatDuration } from "../Errors.js"
import type * as Observability from "../Observability.js"
import type * as Backend from "./Backend.js"
import type * as Directory from "./Directory.js"
import type { AgentStorageError, ResultMessage, UnsafeAgentPath } from "./Domain.js"
import * as OperatorFile from "./OperatorFile.js"
import type { AgentRecord } from "./Registry.js"

const previewLength = 500

/** A text shortened for an event payload. */
export const preview = (text: string): string =>
  text.length <= previewLength ? text : `${text.slice(0, previewLength)}…`

/** Emits a big3 lifecycle event ("AgentCreated", …) for an agent's session. */
export type Emit = (
  hookEventType: string,
  sessionId: string,
  payload: Record<string, unknown>,
  summary?: string
) => Effect.Effect<void>

export const makeEmit = (observability: Observability.Service): Emit => (hookEventType, sessionId, payload, summary) =>
  observability.emit({
    source_app: "big3",
    session_id: sessionId,
    hook_event_type: hookEventType,
    payload,
    ...(summary === undefined ? {} : { summary })
  })

/**
 * What an interruption of a command means: `stopped` (its agent is being deleted, or the process
 * that owns it is shutting down for good: recorded as interrupted), or `handover` (a runner lets
 * go of a durable command, which resumes on the runner that takes the agent: it stays running).
 */
export type Interruption = "stopped" | "handover"

/** What a command needs from the service. */
export interface Context {
  readonly backend: Backend.Service
  readonly files: Directory.Directory
  readonly emit: Emit
  readonly withExecutionTimeout: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OperationTimeout, R>
  /** The least time between two progress rewrites of the operator file. */
  readonly progressInterval: Duration.Duration
}

/** What one execution of a command adds to `Context` (the defaults are an in-process command's). */
export interface Execution {
  /** What an interruption means now; default `stopped`. */
  readonly interruption?: Effect.Effect<Interruption> | undefined
  /**
   * Records a final outcome before it is written; false means it is not this execution's to
   * write (a later attempt owns the command, or it finished already), so the file is left alone.
   * Default: every outcome is written.
   */
  readonly record?: ((status: Exclude<OperatorFile.Status, "running">, result: string) => Effect.Effect<boolean, AgentStorageError>) | undefined
  /**
   * Whether this execution may still write the operator file, asked before each progress write:
   * false stops the run without writing (a later attempt owns the command). Default: always.
   */
  readonly guard?: Effect.Effect<boolean, AgentStorageError> | undefined
}

/** A unique suffix for temp files. */
export const uniqueSuffix = Effect.map(Random.nextIntBetween(0, 0x7fffffff), (n) => n.toString(36))

/**
 * The command's whole life, to be forked: never fails (a failure to write the outcome is
 * logged). Interrupting it interrupts the run, waits for it to stop, then records "interrupted".
 */
export const job = (
  context: Context & Execution,
  input: {
    readonly agent: AgentRecord
    readonly location: Directory.Location
    readonly doc: OperatorFile.Document
    readonly fileName: string
    /** The operator file's absolute path, for messages and events. */
    readonly file: string
    readonly prompt: string
  }
): Effect.Effect<void> => {
  const { agent, doc, file, location } = input
  const { emit, files } = context
  const base = { agent: agent.name, operator_file: file }
  const summary = (what: string) => `command of ${agent.name} ${what}`

  const write = Effect.flatMap(uniqueSuffix, (unique) => files.writeFile(location, input.fileName, OperatorFile.render(doc), unique))
  const record = context.record ?? (() => Effect.succeed(true))
  const guard = context.guard ?? Effect.succeed(true)
  // A progress write by an execution that is no longer the command's own stops it instead.
  const writeProgress = Effect.flatMap(guard, (mine) => mine ? write : Effect.interrupt)
  // The outcome is recorded first (for a durable command, only its current attempt may), then
  // written; an outcome that is not this execution's to record leaves the file alone.
  const finish = (status: Exclude<OperatorFile.Status, "running">, result: string) =>
    Effect.flatMap(record(status, result), (mine) =>
      mine
        ? Effect.flatMap(Clock.currentTimeMillis, (now) => {
          doc.status = status
          doc.result = result
          doc.updatedAt = now
          return write
        })
        : Effect.logWarning(`agent ${agent.name}: ${file} was finished by another attempt; this one's outcome (${status}) is dropped`))

  // Each message updates the document and pokes the writer; pokes arriving while it waits out
  // the interval collapse into one (a sliding queue of one), so it writes the latest document.
  // A failed write fails the command, as the race ends with it.
  const consume = Effect.flatMap(Queue.sliding<void>(1), (pokes) => {
    const writer = Effect.forever(
      Queue.take(pokes).pipe(Effect.zipRight(writeProgress), Effect.zipRight(Effect.sleep(context.progressInterval)))
    )
    const fold = context.backend.run({ sessionId: agent.sessionId, prompt: input.prompt, cwd: location.directory }).pipe(
      Stream.takeUntil((message) => message._tag === "Result"),
      Stream.runFoldEffect(Option.none<ResultMessage>(), (last, message) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          OperatorFile.addProgress(doc, now, OperatorFile.describeMessage(message))
          return Effect.as(Queue.offer(pokes, undefined), message._tag === "Result" ? Option.some(message) : last)
        }))
    )
    return Effect.raceFirst(fold, writer)
  })

  const failed = (result: string, payload: Record<string, unknown>) =>
    Effect.zipRight(finish("failed", result), emit("AgentCommandFailed", agent.sessionId, { ...base, ...payload }, summary("failed")))

  const onResult = (result: ResultMessage) => {
    const cost = OperatorFile.describeCost(result)
    const text = result.text.trim() === "" ? "_the agent returned no text_" : result.text
    const body = cost === undefined ? text : `${text}\n\n_${cost}_`
    const details = {
      ...(result.costUsd === undefined ? {} : { cost_usd: result.costUsd }),
      ...(result.subtype === undefined ? {} : { subtype: result.subtype }),
      ...(result.turns === undefined ? {} : { turns: result.turns })
    }
    return result.isError
      ? failed(
        `The agent reported an error${result.subtype === undefined ? "" : ` (${result.subtype})`}:\n\n${body}`,
        { ...details, error: preview(result.text) }
      )
      : Effect.zipRight(
        finish("completed", body),
        emit("AgentCommandFinished", agent.sessionId, { ...base, ...details }, summary("finished"))
      )
  }

  const onStopped = Effect.zipRight(
    finish("interrupted", "Interrupted: the command was stopped before it finished (agent deleted or big3 shutting down)."),
    emit("AgentCommandInterrupted", agent.sessionId, base, summary("interrupted"))
  )
  // The runner lets go of a durable command: it stays running, and says where it went.
  const onHandover = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    OperatorFile.addProgress(doc, now, "Handed over: this runner stopped or gave the agent up; the command resumes on the runner that takes the agent")
    return Effect.flatMap(guard, (mine) =>
      mine
        ? Effect.zipRight(write, emit("AgentCommandHandedOver", agent.sessionId, base, summary("handed over")))
        : Effect.logWarning(`agent ${agent.name}: ${file} was taken over by another attempt; this one stops and leaves it alone`))
  })
  const onInterrupted = Effect.flatMap(context.interruption ?? Effect.succeed<Interruption>("stopped"), (kind) =>
    kind === "handover" ? onHandover : onStopped)

  const onFailure = (cause: Cause.Cause<Big3Error | AgentStorageError | UnsafeAgentPath>) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value
      if (error._tag === "OperationTimeout" && error.operation === "agent_execution") {
        return Effect.zipRight(
          finish("timed out", `Interrupted: the command timed out after ${formatDuration(error.timeout)} (agent_execution).`),
          emit("AgentCommandTimedOut", agent.sessionId, { ...base, timeout_s: Duration.toSeconds(error.timeout) }, summary("timed out"))
        )
      }
      return failed(`Failed: ${error._tag}: ${error.message}`, {
        error_tag: error._tag,
        error: preview(error.message),
        retryable: error.retryable,
        // The upstream's hint of when to come back (a rate limit, a quota), for whoever reads the events.
        ...("retryAfter" in error && error.retryAfter !== undefined ? { retry_after_ms: Duration.toMillis(error.retryAfter) } : {})
      })
    }
    if (Cause.isInterruptedOnly(cause)) return onInterrupted
    return failed(`Failed: internal error: ${Cause.pretty(cause).split("\n")[0]}`, {
      error_tag: "Defect",
      error: preview(Cause.pretty(cause))
    })
  }

  // The run is a child fiber joined under the deadline. Whether the deadline fires or the
  // command itself is interrupted (delete, shutdown), the run is interrupted and awaited (its
  // backend stops) before the outcome is written, so no late progress write can replace the
  // final status, and the outcome is written even when the command itself was interrupted.
  return Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const running = yield* Effect.fork(restore(consume))
      const exit = yield* Effect.exit(restore(context.withExecutionTimeout(Fiber.join(running))))
      yield* Fiber.interrupt(running)
      yield* Exit.match(exit, {
        onSuccess: Option.match({
          onNone: () => failed("Failed: the agent stopped without a result.", { error: "no result" }),
          onSome: onResult
        }),
        onFailure
      }).pipe(
        // Inside the mask: outside it, an interrupted command (delete, shutdown) would skip the
        // handler and lose the reason its outcome is not in the file.
        Effect.catchAll((error) => Effect.logError(`agent ${agent.name}: could not record the outcome of ${file}: ${error.message}`))
      )
    })
  )
}
