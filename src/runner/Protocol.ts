/**
 * What runners say to each other and to the CLI: the `Agent` entity (each agent is one, so one
 * runner owns it at a time), the `AgentCommand` workflow's payload and outcome, and the CLI's
 * API (`RunnerApi`, `@effect/rpc` over HTTP on loopback).
 *
 * Errors cross the wire as the taxonomy's own classes; the five that carry a `Duration`
 * (`OperationTimeout`, `RateLimited`, `QuotaExhausted`, `ServiceUnavailable`, `CircuitOpen`)
 * travel in a form whose durations are encoded (`Schema.Duration`; `DurationFromSelf` does not
 * serialize) and are rebuilt as the same classes on arrival.
 *
 * @internal
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import {
  AgentExists,
  AgentStorageError,
  InvalidAgentName,
  RegistryCorrupt,
  UnsafeAgentPath
} from "../Agents.js"
import {
  CircuitOpen,
  DecodeError,
  InvalidRequest,
  NetworkError,
  NotFound,
  OperationTimeout,
  QuotaExhausted,
  RateLimited,
  ServiceUnavailable,
  Unauthorized
} from "../Errors.js"

// ---------------------------------------------------------------------------------------------
// Errors on the wire
// ---------------------------------------------------------------------------------------------

const common = { service: Schema.String, message: Schema.String }
const status = { status: Schema.optional(Schema.Number) }

const OperationTimeoutWire = Schema.transform(
  Schema.TaggedStruct("OperationTimeout", {
    ...common,
    operation: Schema.String,
    timeout: Schema.Duration,
    retryable: Schema.Literal(true)
  }),
  Schema.typeSchema(OperationTimeout),
  {
    strict: true,
    decode: ({ _tag: _, ...fields }) => new OperationTimeout(fields),
    encode: (error) => ({
      _tag: "OperationTimeout" as const,
      service: error.service,
      message: error.message,
      operation: error.operation,
      timeout: error.timeout,
      retryable: error.retryable
    })
  }
)

const RateLimitedWire = Schema.transform(
  Schema.TaggedStruct("RateLimited", {
    ...common,
    ...status,
    retryAfter: Schema.optional(Schema.Duration),
    retryable: Schema.Literal(true)
  }),
  Schema.typeSchema(RateLimited),
  {
    strict: true,
    decode: ({ _tag: _, ...fields }) => new RateLimited(fields),
    encode: (error) => ({
      _tag: "RateLimited" as const,
      service: error.service,
      message: error.message,
      ...(error.status === undefined ? {} : { status: error.status }),
      ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter }),
      retryable: error.retryable
    })
  }
)

const QuotaExhaustedWire = Schema.transform(
  Schema.TaggedStruct("QuotaExhausted", {
    ...common,
    ...status,
    quotaId: Schema.optional(Schema.String),
    retryAfter: Schema.optional(Schema.Duration),
    retryable: Schema.Literal(false)
  }),
  Schema.typeSchema(QuotaExhausted),
  {
    strict: true,
    decode: ({ _tag: _, ...fields }) => new QuotaExhausted(fields),
    encode: (error) => ({
      _tag: "QuotaExhausted" as const,
      service: error.service,
      message: error.message,
      ...(error.status === undefined ? {} : { status: error.status }),
      ...(error.quotaId === undefined ? {} : { quotaId: error.quotaId }),
      ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter }),
      retryable: error.retryable
    })
  }
)

const ServiceUnavailableWire = Schema.transform(
  Schema.TaggedStruct("ServiceUnavailable", {
    ...common,
    ...status,
    retryAfter: Schema.optional(Schema.Duration),
    retryable: Schema.Literal(true)
  }),
  Schema.typeSchema(ServiceUnavailable),
  {
    strict: true,
    decode: ({ _tag: _, ...fields }) => new ServiceUnavailable(fields),
    encode: (error) => ({
      _tag: "ServiceUnavailable" as const,
      service: error.service,
      message: error.message,
      ...(error.status === undefined ? {} : { status: error.status }),
      ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter }),
      retryable: error.retryable
    })
  }
)

const CircuitOpenWire = Schema.transform(
  Schema.TaggedStruct("CircuitOpen", {
    ...common,
    retryAfter: Schema.Duration,
    retryable: Schema.Literal(false)
  }),
  Schema.typeSchema(CircuitOpen),
  {
    strict: true,
    decode: ({ _tag: _, ...fields }) => new CircuitOpen(fields),
    encode: (error) => ({
      _tag: "CircuitOpen" as const,
      service: error.service,
      message: error.message,
      retryAfter: error.retryAfter,
      retryable: error.retryable
    })
  }
)

/** Every failure of the Agents service (`Agents.AgentsError`), as it crosses the wire. */
export const AgentsError = Schema.Union(
  NetworkError,
  OperationTimeoutWire,
  RateLimitedWire,
  QuotaExhaustedWire,
  ServiceUnavailableWire,
  InvalidRequest,
  Unauthorized,
  DecodeError,
  CircuitOpenWire,
  NotFound,
  InvalidAgentName,
  AgentExists,
  RegistryCorrupt,
  AgentStorageError,
  UnsafeAgentPath
)

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/** An operator file's status. */
export const Status = Schema.Literal("running", "completed", "failed", "timed out", "interrupted")

/** How a durable command ended (`Agents.Outcome`). */
export const Outcome = Schema.Struct({ status: Status, attempt: Schema.Number })

/** A durable command (`Agents.DurableCommand`): the `AgentCommand` workflow's payload. */
export const DurableCommand = Schema.Struct({
  agent: Schema.String,
  file: Schema.String,
  prompt: Schema.String,
  createdAt: Schema.Number
})

/** What `create` returns (`Agents.Created`). */
export const Created = Schema.Struct({
  name: Schema.String,
  sessionId: Schema.String,
  directory: Schema.String,
  greeting: Schema.String
})

/** An operator file and its content (`Agents.OperatorFileContent`). */
export const OperatorFileContent = Schema.Struct({ file: Schema.String, content: Schema.String })

/** A registered agent (`Agents.Agent`), its creation time in ms. */
export const Agent = Schema.Struct({
  name: Schema.String,
  type: Schema.String,
  sessionId: Schema.String,
  directory: Schema.String,
  directoryRecorded: Schema.Boolean,
  createdAt: Schema.DateFromNumber,
  greeting: Schema.String,
  runningCommands: Schema.Number
})

/** A runner, as `Info` describes it. */
export const RunnerInfo = Schema.Struct({
  pid: Schema.Number,
  /** The store, in words (`SQLite at …`, `PostgreSQL at host:port/db`); never a password. */
  store: Schema.String,
  /** This runner's cluster address (`host:port`), when it talks to other runners. */
  runner: Schema.optional(Schema.String),
  /** The agents this runner owns now. */
  agents: Schema.Array(Schema.String)
})
export type RunnerInfo = typeof RunnerInfo.Type

// ---------------------------------------------------------------------------------------------
// The Agent entity
// ---------------------------------------------------------------------------------------------

/**
 * An agent, addressed by its name. Its runner creates it, prepares and starts its commands, runs
 * them (`Run`, the durable message the `AgentCommand` workflow's activity sends: persisted, one
 * per operator file), reads its operator files and deletes it.
 */
export const AgentEntity = Entity.make("big3/Agent", [
  Rpc.make("Create", { payload: { type: Schema.String }, success: Created, error: AgentsError }),
  Rpc.make("Command", {
    payload: { prompt: Schema.String },
    success: Schema.Struct({ operatorFile: Schema.String }),
    error: AgentsError
  }),
  Rpc.make("Run", {
    payload: { file: Schema.String, prompt: Schema.String, createdAt: Schema.Number },
    success: Outcome,
    primaryKey: ({ file }) => file
  }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("Result", {
    payload: { file: Schema.optional(Schema.String) },
    success: OperatorFileContent,
    error: AgentsError
  }),
  Rpc.make("Delete", { payload: { keepDirectory: Schema.Boolean }, error: AgentsError })
])

// ---------------------------------------------------------------------------------------------
// The CLI's API
// ---------------------------------------------------------------------------------------------

/** What `big3 agents …` asks a runner, over HTTP on 127.0.0.1 with the token of `runner.json`. */
export class RunnerApi extends RpcGroup.make(
  Rpc.make("Info", { success: RunnerInfo, error: AgentsError }),
  Rpc.make("Create", {
    payload: { name: Schema.optional(Schema.String), type: Schema.String },
    success: Created,
    error: AgentsError
  }),
  Rpc.make("Command", {
    payload: { name: Schema.String, prompt: Schema.String },
    success: Schema.Struct({ operatorFile: Schema.String }),
    error: AgentsError
  }),
  Rpc.make("Result", {
    payload: { name: Schema.String, file: Schema.optional(Schema.String) },
    success: OperatorFileContent,
    error: AgentsError
  }),
  Rpc.make("List", { success: Schema.Array(Agent), error: AgentsError }),
  Rpc.make("Delete", { payload: { name: Schema.String, keepDirectory: Schema.Boolean }, error: AgentsError })
) {}
