/**
 * The whole system as one layer, and a `ManagedRuntime` for Promise callers.
 *
 * `Runtime.layer` provides configuration, the undici `HttpClient`, Node's `FileSystem` and `Path`,
 * the store (SQLite at `{BIG3_STATE_DIR}/big3.db`, or PostgreSQL at `BIG3_DATABASE_URL`), the breaker registry, and the Gemini,
 * Observability and Agents clients (agents on the Claude Agent SDK), the browser and the browser
 * agent (Chromium starts only when a task opens it), the Realtime client and the Voice
 * orchestrator, and telemetry (`/metrics` when `BIG3_METRICS_PORT` is set, OTLP export when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is). It is composed once; layers are memoized by reference, so each service is built
 * once however many others need it.
 *
 * ```ts
 * const runtime = Runtime.makeRuntime()
 * const answer = await runtime.runPromise(Gemini.generateContent(request))
 * await runtime.dispose() // flushes events (or spools them) within graceful_shutdown
 * ```
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Path from "@effect/platform/Path"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Adaptive from "./Adaptive.js"
import * as Agents from "./Agents.js"
import * as Browser from "./Browser.js"
import * as BrowserAgent from "./BrowserAgent.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Gemini from "./Gemini.js"
import * as Observability from "./Observability.js"
import * as Realtime from "./Realtime.js"
import * as ReliabilityConfig from "./ReliabilityConfig.js"
import * as Telemetry from "./Telemetry.js"
import * as Voice from "./Voice.js"
import type { Foundation, FoundationOptions } from "./runtime/foundation.js"
import { foundationStages, observabilityWith, withConfigProvider } from "./runtime/foundation.js"

export type { Foundation, FoundationOptions }
export { observabilityWith }

/** Everything `Runtime.layer` provides. */
export type Services =
  | ReliabilityConfig.ReliabilityConfig
  | CircuitBreaker.CircuitBreaker
  | Adaptive.Adaptive
  | Gemini.Gemini
  | Observability.Observability
  | Agents.Agents
  | Realtime.Realtime
  | Voice.Voice
  | Browser.Browser
  | BrowserAgent.BrowserAgent
  | HttpClient.HttpClient
  | FileSystem.FileSystem
  | Path.Path
  | SqlClient.SqlClient
  | Telemetry.Telemetry

/**
 * What building the runtime can fail with: bad configuration, a store that cannot be opened, or
 * a `/metrics` port that cannot be bound.
 */
export type Error = ConfigError.ConfigError | SqlError | Agents.AgentsError | Telemetry.TelemetryError

/** Pieces to replace, for tests, demos and apps; anything not given comes from the environment. */
export interface Options extends FoundationOptions {
  readonly gemini?: Layer.Layer<Gemini.Gemini, ConfigError.ConfigError, ReliabilityConfig.ReliabilityConfig | CircuitBreaker.CircuitBreaker | HttpClient.HttpClient> | undefined
  readonly agentBackend?: Layer.Layer<Agents.AgentBackend, ConfigError.ConfigError, Observability.Observability> | undefined
  readonly agents?: Layer.Layer<Agents.Agents, ConfigError.ConfigError | Agents.AgentsError, Agents.Requirements> | undefined
  readonly realtime?: Layer.Layer<Realtime.Realtime, ConfigError.ConfigError, ReliabilityConfig.ReliabilityConfig | CircuitBreaker.CircuitBreaker> | undefined
  readonly browser?: Layer.Layer<Browser.Browser, ConfigError.ConfigError, ReliabilityConfig.ReliabilityConfig> | undefined
  /** The browser agent (also behind the voice loop's `browser_use` tool). */
  readonly browserAgent?: Layer.Layer<BrowserAgent.BrowserAgent, ConfigError.ConfigError, BrowserAgent.Requirements> | undefined
}

/**
 * The stages of the composition, each built on the one before. They are layer values made once
 * per call, so a stage shared by two others is built once when both are provided together.
 */
const stages = (options: Options) => {
  const { breakers, foundation, httpClient, observability, telemetry } = foundationStages(options)
  const agents = (options.agents ?? Agents.layer).pipe(
    Layer.provide(options.agentBackend ?? Agents.claudeAgentSdk),
    Layer.provideMerge(observability)
  )
  const gemini = (options.gemini ?? Gemini.layer).pipe(Layer.provide(foundation))
  // Gemini on configuration, breakers and HTTP only: no store, no files (what `big3 gemini` runs on).
  const geminiAlone = (options.gemini ?? Gemini.layer).pipe(
    Layer.provideMerge(Adaptive.layer),
    Layer.provideMerge(breakers),
    Layer.provideMerge(httpClient),
    Layer.provideMerge(telemetry)
  )
  const browser = (options.browser ?? Browser.layer).pipe(Layer.provide(foundation))
  const browserAgent = (options.browserAgent ?? BrowserAgent.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(browser, gemini, observability))
  )
  const realtime = (options.realtime ?? Realtime.layer).pipe(Layer.provide(foundation))
  const voice = Voice.layer.pipe(Layer.provideMerge(Layer.mergeAll(realtime, agents, browserAgent)))
  return { foundation, observability, agents, geminiAlone, browserAgent, voice, all: voice }
}

/** The foundation alone (no clients), for tools that only need the store or the breakers. */
export const foundationWith = (
  options: Options = {}
): Layer.Layer<Foundation, ConfigError.ConfigError | SqlError | Telemetry.TelemetryError> =>
  withConfigProvider(options, stages(options).foundation)

/** The foundation, Observability and Agents, without Gemini (what `big3 agents` runs on). */
export const agentsWith = (
  options: Options = {}
): Layer.Layer<
  Exclude<Services, Gemini.Gemini | Browser.Browser | BrowserAgent.BrowserAgent | Realtime.Realtime | Voice.Voice>,
  Error
> => withConfigProvider(options, stages(options).agents)

/** Everything `big3 voice` runs on: the voice loop with its tools' services (Agents, the browser agent). */
export const voiceWith = (options: Options = {}): Layer.Layer<Services, Error> =>
  withConfigProvider(options, stages(options).voice)

/** The foundation, Observability, Gemini, the browser and the browser agent (what `big3 browse` runs on). */
export const browserAgentWith = (
  options: Options = {}
): Layer.Layer<
  Foundation | Observability.Observability | Gemini.Gemini | Browser.Browser | BrowserAgent.BrowserAgent,
  ConfigError.ConfigError | SqlError | Telemetry.TelemetryError
> => withConfigProvider(options, stages(options).browserAgent)

/** Gemini with configuration, breakers and HTTP, and nothing else (no store, no files). */
export const geminiWith = (
  options: Options = {}
): Layer.Layer<
  Gemini.Gemini | ReliabilityConfig.ReliabilityConfig | CircuitBreaker.CircuitBreaker | HttpClient.HttpClient | Telemetry.Telemetry,
  ConfigError.ConfigError | Telemetry.TelemetryError
> => withConfigProvider(options, stages(options).geminiAlone)

/**
 * Every stage from one composition, for tools that combine stages: stages taken from one call
 * share their layer values, so each service is built once when several are provided together.
 */
export const stagesWith = (options: Options = {}) => {
  const built = stages(options)
  return {
    foundation: withConfigProvider(options, built.foundation),
    observability: withConfigProvider(options, built.observability),
    agents: withConfigProvider(options, built.agents),
    gemini: withConfigProvider(options, built.geminiAlone),
    browserAgent: withConfigProvider(options, built.browserAgent),
    voice: withConfigProvider(options, built.voice),
    all: withConfigProvider(options, built.all)
  }
}

/** The composed layer, with some pieces replaced. */
export const layerWith = (options: Options = {}): Layer.Layer<Services, Error> =>
  withConfigProvider(options, stages(options).all)

/** The whole system, configured from the environment. */
export const layer: Layer.Layer<Services, Error> = layerWith()

/**
 * A `ManagedRuntime` over `Runtime.layer` (or `layerWith(options)`) for Promise-based apps:
 * `runtime.runPromise(effect)`, and `runtime.dispose()` at exit to flush events and close the store.
 */
export const makeRuntime = (options?: Options): ManagedRuntime.ManagedRuntime<Services, Error> =>
  ManagedRuntime.make(options === undefined ? layer : layerWith(options))
