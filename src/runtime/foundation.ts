/**
 * The first stages of `Runtime`'s composition: the foundation every client stands on, and the
 * Observability client on it. Apart from the other clients, so that what runs on these alone
 * (`big3 events`, once per hook event) does not load Gemini, the agents, the browser or the voice
 * loop at start-up.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Path from "@effect/platform/Path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import type * as ConfigProvider from "effect/ConfigProvider"
import * as Layer from "effect/Layer"
import * as Adaptive from "../Adaptive.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import * as Observability from "../Observability.js"
import * as ReliabilityConfig from "../ReliabilityConfig.js"
import * as Store from "../Store.js"
import * as Telemetry from "../Telemetry.js"
import { lazyUndici } from "./httpClient.js"

/** The pieces of the foundation and Observability stages that can be replaced. */
export interface FoundationOptions {
  /** Where every `Config` is read from; default the environment. */
  readonly configProvider?: ConfigProvider.ConfigProvider | undefined
  readonly config?: Layer.Layer<ReliabilityConfig.ReliabilityConfig, ConfigError.ConfigError> | undefined
  readonly httpClient?: Layer.Layer<HttpClient.HttpClient> | undefined
  readonly store?: Layer.Layer<SqlClient.SqlClient, SqlError | ConfigError.ConfigError> | undefined
  /** Adaptive timeouts and pacing; default `Adaptive.layerStore` (learned timeouts kept in the store). */
  readonly adaptive?: Layer.Layer<Adaptive.Adaptive, SqlError, ReliabilityConfig.ReliabilityConfig | SqlClient.SqlClient> | undefined
  readonly observability?: Layer.Layer<Observability.Observability, ConfigError.ConfigError | SqlError, Observability.Requirements> | undefined
  /** The Prometheus endpoint and OTLP export; default `Telemetry.layer` (from the environment). */
  readonly telemetry?: Layer.Layer<Telemetry.Telemetry, ConfigError.ConfigError | Telemetry.TelemetryError> | undefined
}

/** What every client stands on: configuration, breakers, HTTP, files and the store. */
export type Foundation =
  | ReliabilityConfig.ReliabilityConfig
  | CircuitBreaker.CircuitBreaker
  | Adaptive.Adaptive
  | HttpClient.HttpClient
  | FileSystem.FileSystem
  | Path.Path
  | SqlClient.SqlClient
  | Telemetry.Telemetry

export const withConfigProvider = <A, E>(options: FoundationOptions, layer: Layer.Layer<A, E>): Layer.Layer<A, E> =>
  options.configProvider === undefined ? layer : Layer.provide(layer, Layer.setConfigProvider(options.configProvider))

/**
 * The foundation's stages, each built on the one before. They are layer values made once per
 * call, so a stage shared by two others is built once when both are provided together.
 */
export const foundationStages = (options: FoundationOptions) => {
  const httpClient = options.httpClient ?? lazyUndici
  const platform = Layer.mergeAll(
    httpClient,
    NodeFileSystem.layer,
    NodePath.layer,
    options.store ?? Store.layerConfig
  )
  // Built first, so that the tracer it may install is the one every later service runs with.
  const telemetry = options.telemetry ?? Telemetry.layer
  const breakers = CircuitBreaker.layer.pipe(Layer.provideMerge(options.config ?? ReliabilityConfig.layer))
  // Adaptive timeouts sit beside the breakers, on the store that keeps what they learn.
  const foundation = (options.adaptive ?? Adaptive.layerStore).pipe(
    Layer.provideMerge(breakers.pipe(Layer.provideMerge(platform), Layer.provideMerge(telemetry)))
  )
  // The spool lives in the store, PostgreSQL's included (shared by every process on it).
  const observability = (options.observability ?? Observability.layer).pipe(Layer.provideMerge(foundation))
  return { httpClient, telemetry, breakers, foundation, observability }
}

/** The foundation and the Observability client (what `big3 events` runs on). */
export const observabilityWith = (
  options: FoundationOptions = {}
): Layer.Layer<Foundation | Observability.Observability, ConfigError.ConfigError | SqlError | Telemetry.TelemetryError> =>
  withConfigProvider(options, foundationStages(options).observability)
