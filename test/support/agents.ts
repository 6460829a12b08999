/**
 * The Agents test harness: a fresh SQLite registry, a temp agents directory, a scripted backend
 * and an Observability stub that records events, per test; plus waiting helpers that let real
 * I/O progress without moving the TestClock.
 */
import type * as Sdk from "@anthropic-ai/claude-agent-sdk"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Agents from "../../src/Agents.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Observability from "../../src/Observability.js"
import * as ReliabilityConfig from "../../src/ReliabilityConfig.js"

export interface Harness {
  readonly dir: string
  readonly events: Array<Observability.EventInput>
  readonly eventTypes: () => ReadonlyArray<string>
}

export type Env = Agents.Agents | SqlClient.SqlClient

/** What durable commands were handed to the dispatch (a runner would start a workflow for each). */
export type Dispatched = Array<Agents.DurableCommand>

/** Records every event; only `emit` and `flush` are used by the agents module. */
const observabilityStub = (events: Array<Observability.EventInput>) =>
  Layer.mock(Observability.Observability, {
    emit: (event) => Effect.sync(() => void events.push(event)),
    flush: Effect.void
  })

/** What an Agents service stands on: settings, breaker, the events stub, the scripted backend, files and the store. */
const dependencies = (
  options: {
    readonly script?: Agents.Script | undefined
    readonly database?: string | undefined
    readonly fileSystem?: Layer.Layer<FileSystem.FileSystem> | undefined
    /** The store (default SQLite at `database`, or in memory). */
    readonly store?: Layer.Layer<SqlClient.SqlClient, unknown> | undefined
  },
  events: Array<Observability.EventInput>
) => {
  const config = ReliabilityConfig.layerWith({})
  return Layer.mergeAll(
    config,
    CircuitBreaker.layer.pipe(Layer.provide(config)),
    observabilityStub(events),
    Agents.scriptedBackend(options.script),
    options.fileSystem ?? NodeFileSystem.layer,
    NodePath.layer,
    options.store ?? SqliteClient.layer({ filename: options.database ?? ":memory:" })
  )
}

export const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), "big3-agents-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Runs `body` against a fresh Agents service over `script`. */
export const withAgents = <A, E>(
  options: {
    readonly script?: Agents.Script
    readonly database?: string
    readonly dir?: string
    /** The agents root the settings point at (default `<dir>/agents`). */
    readonly agentsDir?: string
    readonly fileSystem?: Layer.Layer<FileSystem.FileSystem>
    /** The store (default SQLite at `database`, or in memory). */
    readonly store?: Layer.Layer<SqlClient.SqlClient, unknown>
  },
  body: (harness: Harness) => Effect.Effect<A, E, Env | Scope.Scope>
): Effect.Effect<A, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = options.dir ?? (yield* tempDir)
    const events: Array<Observability.EventInput> = []
    const layer = Agents.layerWith({ agentsDir: options.agentsDir ?? nodePath.join(dir, "agents") }).pipe(
      Layer.provideMerge(dependencies(options, events))
    )
    const harness: Harness = { dir, events, eventTypes: () => events.map((event) => event.hook_event_type) }
    return yield* Effect.provide(body(harness), layer)
  })

/**
 * Runs `body` against a runner's Agents service (`Agents.layerDurable`): commands are recorded and
 * dispatched into `dispatched` instead of a workflow, and the test drives `CommandHost.execute`
 * as a runner's entity would.
 */
export const withDurableAgents = <A, E>(
  options: {
    readonly script?: Agents.Script
    readonly database?: string
    readonly store?: Layer.Layer<SqlClient.SqlClient, unknown>
  },
  body: (harness: Harness & { readonly dispatched: Dispatched }) => Effect.Effect<A, E, Env | Agents.CommandHost | Scope.Scope>
): Effect.Effect<A, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const events: Array<Observability.EventInput> = []
    const dispatched: Dispatched = []
    const dispatch: Agents.Dispatch = { start: (command) => Effect.sync(() => void dispatched.push(command)) }
    const layer = Agents.layerDurable(dispatch, { agentsDir: nodePath.join(dir, "agents") }).pipe(
      Layer.provideMerge(dependencies(options, events))
    )
    const harness = { dir, events, dispatched, eventTypes: () => events.map((event) => event.hook_event_type) }
    return yield* Effect.provide(body(harness), layer)
  })

/** Lets real I/O (SQLite, the file system) progress without moving the TestClock. */
export const settle = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Waits (yielding to real I/O, never moving the TestClock) until `check` holds; gives up after 10 s. */
export const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>, what: string): Effect.Effect<void, E | Error, R> =>
  Effect.gen(function*() {
    const giveUpAt = Date.now() + 10_000
    while (Date.now() < giveUpAt) {
      if (yield* check) return
      yield* settle
    }
    return yield* Effect.fail(new Error(`gave up waiting for ${what}`))
  })

export const waitForEvent = (harness: Harness, type: string) =>
  waitUntil(Effect.sync(() => harness.eventTypes().includes(type)), `event ${type}`)

export const fileContains = (file: string, text: string) =>
  Effect.sync(() => fs.existsSync(file) && fs.readFileSync(file, "utf8").includes(text))

export const agentsDir = (harness: Harness) => nodePath.join(harness.dir, "agents")


/**
 * An assistant message as Claude Code sends it through the Agent SDK, saying `content`; with
 * `error` it is Claude Code's synthetic one for a failed API call (model "<synthetic>").
 */
export const sdkAssistant = (
  content: Sdk.SDKAssistantMessage["message"]["content"],
  extra: { readonly error?: Sdk.SDKAssistantMessageError; readonly request_id?: string; readonly session_id?: string } = {}
): Sdk.SDKAssistantMessage => ({
  type: "assistant",
  parent_tool_use_id: null,
  uuid: "00000000-0000-4000-8000-000000000001",
  session_id: "00000000-0000-4000-8000-00000000000a",
  ...extra,
  message: {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: extra.error === undefined ? "claude-sonnet-5-5" : "<synthetic>",
    container: null,
    context_management: null,
    diagnostics: null,
    stop_details: null,
    stop_reason: null,
    stop_sequence: null,
    usage: {
      cache_creation: null,
      cache_creation_input_tokens: null,
      cache_read_input_tokens: null,
      fallback_credit: null,
      inference_geo: null,
      input_tokens: 1,
      iterations: null,
      output_tokens: 1,
      output_tokens_details: null,
      server_tool_use: null,
      service_tier: null,
      speed: null
    },
    content
  }
})
