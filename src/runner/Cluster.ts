/**
 * The cluster a runner joins, on `@effect/cluster`, over the application's store (`SqlClient`):
 *
 * - embedded (SQLite): one runner per state directory (`runner.lock` makes sure of it). Its
 *   messages live in SQLite (`SqlMessageStorage`); it owns every shard, so no shard locks and no
 *   runner-to-runner traffic: a restarted runner picks its unfinished work up at once;
 * - shared (PostgreSQL): runners find each other in the store (`SqlRunnerStorage`, each shard
 *   held by a row of `cluster_locks` its runner refreshes) and talk over HTTP on `runnerPort`.
 *   They split the shards, hence the agents; when one stops answering it is dropped (health
 *   pings, or its heartbeat ages past `lockExpiration`) and, once its locks are `lockExpiration`
 *   old, the others take its shards and redeliver what it left unanswered.
 *
 * Timings come from `Settings`, never from the cluster's own environment variables (which would
 * read `HOST` and `PORT`).
 *
 * @internal
 */
import * as HttpRunner from "@effect/cluster/HttpRunner"
import * as MessageStorage from "@effect/cluster/MessageStorage"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import * as Sharding from "@effect/cluster/Sharding"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { createServer } from "node:http"
import * as net from "node:net"

/** How the runner takes part. */
export interface Settings {
  /** `embedded`: the only runner of a SQLite store; `shared`: one of the runners of a PostgreSQL store. */
  readonly mode: "embedded" | "shared"
  /** The host other runners reach this one at (and it listens on). Default 127.0.0.1. */
  readonly host: string
  /** The port of runner-to-runner traffic (shared mode); 0 picks a free one. */
  readonly port: number
  /** How long a silent runner keeps its shards. */
  readonly lockExpiration: Duration.Duration
  /** How long entities get to finish when the runner stops. */
  readonly terminationTimeout: Duration.Duration
}

const clusterConfig = (settings: Settings, address: RunnerAddress.RunnerAddress) =>
  ShardingConfig.layer({
    runnerAddress: Option.some(address),
    shardLockExpiration: settings.lockExpiration,
    shardLockRefreshInterval: Duration.max(Duration.divide(settings.lockExpiration, 3).pipe(Option.getOrElse(() => Duration.seconds(1))), Duration.millis(500)),
    refreshAssignmentsInterval: Duration.seconds(1),
    runnerHealthCheckInterval: Duration.seconds(2),
    entityMessagePollInterval: Duration.seconds(2),
    entityTerminationTimeout: settings.terminationTimeout,
    // Not PostgreSQL advisory locks: those last as long as the runner's connection, and a paused
    // runner (SIGSTOP, a frozen VM) keeps its connection open, so it would keep its agents forever.
    // Rows in `cluster_locks` expire after `lockExpiration` whatever became of their runner.
    shardLockDisableAdvisory: true
  })

/** How other runners dial `host` (the cluster writes `http://host:port`): an IPv6 address in brackets. */
export const dialable = (host: string): string => net.isIPv6(host) ? `[${host}]` : host

/** Only-runner mode: every shard is this runner's; messages in the store. */
const embedded = (settings: Settings) =>
  Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provideMerge(SqlMessageStorage.layer),
    Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
    Layer.provideMerge(clusterConfig(settings, RunnerAddress.make(dialable(settings.host), settings.port)))
  )

/**
 * The cluster's tables on a shared store, built by one runner at a time. Runners started together
 * on an empty database would otherwise race on the cluster's DDL (its migrations table is created
 * after a failed probe, its runner tables with `CREATE TABLE IF NOT EXISTS`, neither atomic on
 * PostgreSQL) and the loser would die. The lock is a PostgreSQL advisory lock on a connection of
 * its own, held while the storage layers build; a runner that dies releases it with its connection.
 */
export const sharedStorage: Layer.Layer<
  MessageStorage.MessageStorage | RunnerStorage.RunnerStorage,
  SqlError,
  SqlClient.SqlClient | ShardingConfig.ShardingConfig
> = Layer.scopedContext(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const storage = Layer.merge(SqlMessageStorage.layer, SqlRunnerStorage.layer)
    const scope = yield* Effect.scope
    return yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* sql.reserve
      yield* connection.executeRaw("SELECT pg_advisory_lock(hashtext($1))", [storageLockKey])
      return yield* Layer.buildWithScope(storage, scope).pipe(
        Effect.ensuring(Effect.ignore(connection.executeRaw("SELECT pg_advisory_unlock(hashtext($1))", [storageLockKey])))
      )
    }))
  })
)

const storageLockKey = "big3:cluster-storage"

/** One of several runners: HTTP between them, shards locked in the store. */
const shared = (settings: Settings) => {
  const server = NodeHttpServer.layer(createServer, { host: settings.host, port: settings.port })
  // The address is known once the server listens (port 0 picks a free one).
  const config = Layer.unwrapEffect(
    HttpServer.addressWith((address) =>
      Effect.succeed(
        clusterConfig(settings, RunnerAddress.make(dialable(settings.host), address._tag === "TcpAddress" ? address.port : settings.port))
      )
    )
  )
  const client = HttpRunner.layerClientProtocolHttpDefault.pipe(Layer.provide(NodeHttpClient.layerUndici))
  const health = RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(client))
  // HttpRunner.layerHttp, without a log line per request (health pings arrive every 2 s).
  const runnerServer = HttpLayerRouter.serve(HttpRunner.layerHttpOptions({ path: "/" }), {
    disableLogger: true,
    disableListenLog: true
  }).pipe(Layer.provide(HttpRunner.layerClientProtocolHttpDefault))
  return runnerServer.pipe(
    Layer.provide(health),
    Layer.provideMerge(sharedStorage),
    Layer.provideMerge(config),
    Layer.provide([RpcSerialization.layerMsgPack, NodeHttpClient.layerUndici]),
    Layer.provide(server)
  )
}

/** What the cluster gives the runner. */
export type Services = Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage | ShardingConfig.ShardingConfig

/** The runner's cluster membership over the application's store. */
export const layer = (settings: Settings): Layer.Layer<Services, SqlError | ServeError, SqlClient.SqlClient> =>
  settings.mode === "embedded" ? embedded(settings) : shared(settings)
