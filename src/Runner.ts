/**
 * Runners: long-running processes that host the agents and run their commands as durable
 * workflows, on `@effect/cluster` and `@effect/workflow` (`big3 serve`).
 *
 * - Each agent is a cluster entity (`AgentEntity`), so one runner owns it at a time: its
 *   runner creates it, prepares its commands, runs them, reads its operator files and deletes it.
 * - Each command is an `AgentCommand` workflow (`CommandWorkflow`) whose activity is the
 *   backend run. Kill the runner mid-command and start it again (or let another runner of the
 *   same database take the agent): the command resumes, writes "Resumed after a restart:
 *   attempt N" into the same operator file, and completes once.
 * - The CLI reaches a runner through `{BIG3_STATE_DIR}/runner.json` (its API's address and a
 *   random token; file mode 0600): `@effect/rpc` over HTTP on 127.0.0.1 (`connect`).
 *
 * Where the state lives follows `Store.layerConfig`: embedded (SQLite in `BIG3_STATE_DIR`, one
 * runner per state directory) or shared (`BIG3_DATABASE_URL=postgres://…`: any number of runners,
 * each with its own state directory, split the agents; a runner that dies leaves its agents and
 * their unfinished commands to the others).
 *
 * Settings: `BIG3_RUNNER_HOST` (default 127.0.0.1: the host other runners reach this one at, and
 * the one it listens on for them), `BIG3_RUNNER_LOCK_EXPIRATION` (default 10 s: how long a runner
 * that stopped answering keeps its agents).
 *
 * @since 0.2.0
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import type * as FileSystem from "@effect/platform/FileSystem"
import type { ServeError } from "@effect/platform/HttpServerError"
import type * as Path from "@effect/platform/Path"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import * as Agents from "./Agents.js"
import { formatDuration } from "./Errors.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import type * as Observability from "./Observability.js"
import * as ReliabilityConfig from "./ReliabilityConfig.js"
import * as Api from "./runner/Api.js"
import * as RunnerAgents from "./runner/Agents.js"
import * as Cluster from "./runner/Cluster.js"
import * as StateFile from "./runner/StateFile.js"
import * as Store from "./Store.js"
import { preview } from "./internal/preview.js"

export { CommandWorkflow } from "./runner/Agents.js"
export { connect, make as makeClient } from "./runner/Client.js"
export type { CallError, Remote } from "./runner/Client.js"
export { AgentEntity, RunnerApi } from "./runner/Protocol.js"
export type { RunnerInfo } from "./runner/Protocol.js"
export { Contents as StateFileContents, fileName as stateFileName, lockName, read as readStateFile, RunnerError } from "./runner/StateFile.js"

/** Options of `layer`. */
export interface Options {
  /** The API's port on 127.0.0.1 (what the CLI calls); default a free one. */
  readonly port?: number | undefined
  /** The port of runner-to-runner traffic (shared store only); default a free one. */
  readonly runnerPort?: number | undefined
}

/** What a runner stands on (`Runtime.observabilityWith` and an `AgentBackend` provide it). */
export type Requirements =
  | ReliabilityConfig.ReliabilityConfig
  | CircuitBreaker.CircuitBreaker
  | Observability.Observability
  | Agents.AgentBackend
  | FileSystem.FileSystem
  | Path.Path
  | SqlClient.SqlClient

/** What starting a runner can fail with. */
export type Error = ConfigError.ConfigError | SqlError | ServeError | Agents.AgentsError | StateFile.RunnerError

// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
const hostNamePattern = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

const invalidHost = (given: string, why: string) =>
  Either.left(ConfigError.InvalidData(
    ["BIG3_RUNNER_HOST"],
    `BIG3_RUNNER_HOST: ${why}, got ${preview(given)}`
  ))

/**
 * `BIG3_RUNNER_HOST`: the host other runners reach this one at; default 127.0.0.1. A host name or
 * an IP address (IPv6 bare or in brackets), without a port; not 0.0.0.0 or `::`, which name every
 * address of this machine and none another runner could dial.
 */
export const hostConfig: Config.Config<string> = Config.string("BIG3_RUNNER_HOST").pipe(
  Config.withDefault("127.0.0.1"),
  Config.mapOrFail((text) => {
    const trimmed = text.trim()
    if (trimmed === "") return Either.right("127.0.0.1")
    const host = trimmed.startsWith("[") && trimmed.endsWith("]") ? trimmed.slice(1, -1) : trimmed
    const family = net.isIP(host)
    if (family === 0) {
      return hostNamePattern.test(host)
        ? Either.right(host)
        : invalidHost(text, "expected a host name or an IP address that other runners can reach (no scheme, no port)")
    }
    const unspecified = new net.BlockList()
    unspecified.addAddress("0.0.0.0", "ipv4")
    unspecified.addAddress("::", "ipv6")
    return unspecified.check(host, family === 4 ? "ipv4" : "ipv6")
      ? invalidHost(text, "expected an address other runners can reach; this one means every address of this machine")
      : Either.right(host)
  })
)

/**
 * `BIG3_RUNNER_LOCK_EXPIRATION`: how long a runner that stopped answering keeps its agents before
 * the others take them (seconds, or a duration); default 10 s. Every runner of a database should
 * use the same value.
 */
export const lockExpirationConfig: Config.Config<Duration.Duration> = Config.string("BIG3_RUNNER_LOCK_EXPIRATION").pipe(
  Config.withDefault("10"),
  Config.mapOrFail((text) =>
    Option.match(ReliabilityConfig.parseDuration(text), {
      onNone: () =>
        Either.left(ConfigError.InvalidData(
          ["BIG3_RUNNER_LOCK_EXPIRATION"],
          `BIG3_RUNNER_LOCK_EXPIRATION: expected seconds (e.g. 10) or a duration (e.g. "30 seconds"), got ${JSON.stringify(text.slice(0, 40))}`
        )),
      onSome: (duration) => Either.right(duration)
    })
  )
)

/**
 * A runner, for the scope of the layer: holds its state directory's lock, joins the cluster over
 * the application's store, registers the `Agent` entity and the `AgentCommand` workflow, serves
 * the API and publishes `runner.json`. Releasing it stops the API first (removing
 * `runner.json`), then hands running commands over (they resume on the next runner that takes
 * their agents), then leaves the cluster.
 */
export const layer = (options: Options = {}): Layer.Layer<never, Error, Requirements> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const stateDir = yield* Store.stateDir
    const location = yield* Store.locationConfig
    const host = yield* hostConfig
    const lockExpiration = yield* lockExpirationConfig
    const config = yield* ReliabilityConfig.ReliabilityConfig
    yield* StateFile.lock(stateDir)

    const mode = location._tag === "Sqlite" ? "embedded" : "shared"
    const cluster = Cluster.layer({
      mode,
      host,
      port: options.runnerPort ?? 0,
      lockExpiration,
      terminationTimeout: config.timeoutOf("graceful_shutdown")
    })
    const engine = ClusterWorkflowEngine.layer.pipe(Layer.provideMerge(cluster))
    const agents = Layer.unwrapEffect(Effect.gen(function*() {
      const dispatch = yield* RunnerAgents.dispatch
      const sharding = yield* ShardingConfig.ShardingConfig
      const address = mode === "embedded"
        ? ""
        : Option.match(sharding.runnerAddress, { onNone: () => "", onSome: (at) => `${at.host}:${at.port} ` })
      return Agents.layerDurable(dispatch, { runner: `${address}(pid ${process.pid})` })
    }))
    const api = Layer.unwrapEffect(Effect.map(ShardingConfig.ShardingConfig, (sharding) =>
      Api.layer({
        port: options.port ?? 0,
        token: StateFile.newToken(),
        stateDir,
        store: Store.describeLocation(location),
        runner: mode === "embedded"
          ? Option.none()
          : Option.map(sharding.runnerAddress, (address) => `${address.host}:${address.port}`)
      })))
    return Layer.mergeAll(RunnerAgents.layer, api).pipe(
      Layer.provideMerge(agents),
      Layer.provideMerge(engine)
    )
  }))

/** What stopping a runner gets beyond `graceful_shutdown`: handing commands over and leaving the cluster. */
export const leaveAllowance: Duration.Duration = Duration.seconds(5)

/**
 * Runs a runner until interrupted (SIGINT / SIGTERM in `big3 serve`). Stopping it takes at most
 * `graceful_shutdown` + `leaveAllowance`: with the store unreachable the cluster's own shutdown
 * would wait for it forever. Past that the runner is left behind with a warning; its agents pass
 * to the other runners when their locks expire, and their commands resume there.
 */
export const serve = (options: Options = {}): Effect.Effect<never, Error, Requirements> =>
  Effect.flatMap(ReliabilityConfig.ReliabilityConfig, (config) => {
    const bound = Duration.sum(config.timeoutOf("graceful_shutdown"), leaveAllowance)
    return Effect.acquireUseRelease(
      Scope.make(),
      (scope) => Effect.zipRight(Layer.buildWithScope(layer(options), scope), Effect.never),
      (scope, exit) =>
        // Finalizers run uninterruptibly: only a disconnected, interruptible close can be cut short.
        Scope.close(scope, exit).pipe(
          Effect.disconnect,
          Effect.interruptible,
          Effect.timeoutOption(bound),
          Effect.flatMap(Option.match({
            onNone: () =>
              Effect.logWarning(
                `big3 serve: the runner did not stop within ${formatDuration(bound)} (graceful_shutdown + ` +
                  `${formatDuration(leaveAllowance)}; is the database reachable?); stopping anyway: its agents pass ` +
                  `to the other runners when their locks expire (BIG3_RUNNER_LOCK_EXPIRATION) and their commands resume there`
              ),
            onSome: () => Effect.void
          }))
        )
    )
  })
