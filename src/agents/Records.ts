/**
 * The durable record of commands that runners execute: one row per command in the
 * `agent_commands` table of the store, beside the registry (SQLite or PostgreSQL: the SQL here
 * runs on both).
 *
 * It is what makes "a command completes once" hold when runners die and commands resume:
 *
 * - every execution of a command begins by counting an attempt (`begin`), so a resumed run
 *   knows which attempt it is;
 * - an outcome is recorded only by the attempt that is current (`finish` matches on the
 *   attempt number, the fencing token): a runner that lost the agent and still runs an old
 *   attempt cannot record a second outcome over the one the new owner records;
 * - a recorded outcome keeps its text, so an execution that finds its command already finished
 *   (its runner died between recording and replying) re-writes that outcome instead of running
 *   the agent again.
 *
 * In-process commands (`big3 agents command` with no runner) are not recorded here: their
 * process is their only owner.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Store from "../Store.js"
import { AgentStorageError } from "./Domain.js"
import type { Status } from "./OperatorFile.js"
import { BigIntColumn, storageError } from "./Registry.js"

/** The table, created when a runner's Agents layer starts. */
export const createTable = `CREATE TABLE IF NOT EXISTS agent_commands (
  agent      TEXT NOT NULL,
  file       TEXT NOT NULL,
  prompt     TEXT NOT NULL,
  status     TEXT NOT NULL,
  attempts   BIGINT NOT NULL DEFAULT 0,
  result     TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (agent, file)
)`

const StatusSchema = Schema.Literal("running", "completed", "failed", "timed out", "interrupted")

const Row = Schema.Struct({
  agent: Schema.String,
  file: Schema.String,
  prompt: Schema.String,
  status: StatusSchema,
  attempts: BigIntColumn,
  result: Schema.NullOr(Schema.String),
  created_at: BigIntColumn
})

/** A recorded command. */
export interface CommandRecord {
  readonly agent: string
  readonly file: string
  readonly prompt: string
  readonly status: Status
  /** Executions begun so far (0 until the first begins). */
  readonly attempts: number
  /** The recorded outcome's text, once finished. */
  readonly result: Option.Option<string>
  readonly createdAt: number
}

const decode = (raw: unknown): Effect.Effect<CommandRecord, AgentStorageError> =>
  Schema.decodeUnknown(Row)(raw).pipe(
    Effect.map((row): CommandRecord => ({
      agent: row.agent,
      file: row.file,
      prompt: row.prompt,
      status: row.status,
      attempts: row.attempts,
      result: Option.fromNullable(row.result),
      createdAt: row.created_at
    })),
    Effect.mapError(() =>
      new AgentStorageError({
        service: "agents",
        message: `an agent_commands row is unreadable; repair or remove it in the big3 database`
      })
    )
  )

/** The records over `SqlClient`. Creates the table when missing. */
export const make = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  yield* Store.ensureSchema("agent commands", [createTable]).pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.mapError(storageError("create its command table"))
  )

  /** Records a new command, running; false when that file name is taken for the agent. */
  const insert = (input: {
    readonly agent: string
    readonly file: string
    readonly prompt: string
    readonly now: number
  }): Effect.Effect<boolean, AgentStorageError> =>
    sql`INSERT INTO agent_commands (agent, file, prompt, status, attempts, created_at, updated_at)
      VALUES (${input.agent}, ${input.file}, ${input.prompt}, 'running', 0, ${input.now}, ${input.now})
      ON CONFLICT (agent, file) DO NOTHING RETURNING file`.pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(storageError(`record a command of agent ${JSON.stringify(input.agent)}`, input.agent))
    )

  const get = (agent: string, file: string): Effect.Effect<Option.Option<CommandRecord>, AgentStorageError> =>
    sql`SELECT agent, file, prompt, status, attempts, result, created_at FROM agent_commands
      WHERE agent = ${agent} AND file = ${file}`.pipe(
      Effect.mapError(storageError(`read a command of agent ${JSON.stringify(agent)}`, agent)),
      Effect.flatMap((rows) => rows.length === 0 ? Effect.succeed(Option.none()) : Effect.asSome(decode(rows[0])))
    )

  /**
   * Begins an execution: counts the attempt of a running command and returns its number, or
   * `None` when the command is no longer running (finished, or its agent deleted).
   */
  const begin = (agent: string, file: string, now: number): Effect.Effect<Option.Option<number>, AgentStorageError> =>
    sql<{ readonly attempts: number | string }>`UPDATE agent_commands SET attempts = attempts + 1, updated_at = ${now}
      WHERE agent = ${agent} AND file = ${file} AND status = 'running' RETURNING attempts`.pipe(
      Effect.mapError(storageError(`begin a command of agent ${JSON.stringify(agent)}`, agent)),
      Effect.map((rows) => rows.length === 0 ? Option.none() : Option.some(Number(rows[0]!.attempts)))
    )

  /**
   * Records the outcome of `attempt`; false when the command is no longer running or a later
   * attempt has begun (that attempt records the outcome, not this one).
   */
  const finish = (input: {
    readonly agent: string
    readonly file: string
    readonly attempt: number
    readonly status: Exclude<Status, "running">
    readonly result: string
    readonly now: number
  }): Effect.Effect<boolean, AgentStorageError> =>
    sql`UPDATE agent_commands SET status = ${input.status}, result = ${input.result}, updated_at = ${input.now}
      WHERE agent = ${input.agent} AND file = ${input.file} AND status = 'running' AND attempts = ${input.attempt}
      RETURNING file`.pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(storageError(`record the outcome of a command of agent ${JSON.stringify(input.agent)}`, input.agent))
    )

  /**
   * Ends a running command as failed whatever its attempt (an execution that cannot run it at all,
   * e.g. its directory became a symbolic link); false when it was no longer running.
   */
  const abandon = (agent: string, file: string, result: string, now: number): Effect.Effect<boolean, AgentStorageError> =>
    sql`UPDATE agent_commands SET status = 'failed', result = ${result}, updated_at = ${now}
      WHERE agent = ${agent} AND file = ${file} AND status = 'running' RETURNING file`.pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(storageError(`record the outcome of a command of agent ${JSON.stringify(agent)}`, agent))
    )

  /** Whether `attempt` is still the command's current attempt (it is running and no later one began). */
  const isCurrent = (agent: string, file: string, attempt: number): Effect.Effect<boolean, AgentStorageError> =>
    sql`SELECT file FROM agent_commands
      WHERE agent = ${agent} AND file = ${file} AND status = 'running' AND attempts = ${attempt}`.pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(storageError(`read a command of agent ${JSON.stringify(agent)}`, agent))
    )

  /** Running commands per agent. */
  const running: Effect.Effect<ReadonlyMap<string, number>, AgentStorageError> =
    sql<{ readonly agent: string; readonly n: number | string }>`SELECT agent, COUNT(*) AS n FROM agent_commands
      WHERE status = 'running' GROUP BY agent`.pipe(
      Effect.map((rows) => new Map(rows.map((row) => [row.agent, Number(row.n)]))),
      Effect.mapError(storageError("count running commands"))
    )

  /** Forgets an agent's commands (its delete). */
  const removeAgent = (agent: string): Effect.Effect<void, AgentStorageError> =>
    sql`DELETE FROM agent_commands WHERE agent = ${agent}`.pipe(
      Effect.asVoid,
      Effect.mapError(storageError(`forget the commands of agent ${JSON.stringify(agent)}`, agent))
    )

  return { insert, get, begin, finish, abandon, isCurrent, running, removeAgent } as const
})

export type Records = Effect.Effect.Success<typeof make>
