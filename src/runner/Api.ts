/**
 * The runner's API for the CLI: `RunnerApi` over HTTP on 127.0.0.1, each request carrying
 * `Authorization: Bearer <token>` (the token of `runner.json`); anything else is answered 401
 * before it is read.
 *
 * Requests about one agent go to the runner that owns it (the `Agent` entity), wherever that is;
 * `List` and `Info` answer from here. Each is bounded by its operation's timeout: `create` by
 * `agent_creation`, `command` by `operator_file_prep`, `result` by `file_read`, `delete` by
 * `agent_cleanup`.
 *
 * @internal
 */
import type { AlreadyProcessingMessage, MailboxFull, PersistenceError } from "@effect/cluster/ClusterError"
import { EntityId } from "@effect/cluster/EntityId"
import * as Sharding from "@effect/cluster/Sharding"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import type * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import { Agents, validateName } from "../Agents.js"
import type { AgentsError } from "../Agents.js"
import { ServiceUnavailable } from "../Errors.js"
import type { OperationId } from "../ReliabilityConfig.js"
import { ReliabilityConfig } from "../ReliabilityConfig.js"
import * as Resilience from "../Resilience.js"
import { AgentEntity, type Created, RunnerApi } from "./Protocol.js"
import * as StateFile from "./StateFile.js"

/** What the API needs to know about its runner. */
export interface Options {
  /** The port to listen on (127.0.0.1); 0 picks a free one. */
  readonly port: number
  readonly token: Redacted.Redacted
  /** Where `runner.json` goes. */
  readonly stateDir: string
  /** The store, in words. */
  readonly store: string
  /** The runner's cluster address, when it has one. */
  readonly runner: Option.Option<string>
}

// The cluster's own failures between here and the agent's runner.
const unreachable = (error: { readonly _tag: string }) =>
  new ServiceUnavailable({
    service: "runner",
    message: `the runner that owns the agent could not be reached (${error._tag}); try again`
  })

type OnTheWay = MailboxFull | AlreadyProcessingMessage | PersistenceError

const isOnTheWay = <E>(error: E): error is Extract<E, OnTheWay> =>
  Predicate.isTagged(error, "MailboxFull") || Predicate.isTagged(error, "AlreadyProcessingMessage") ||
  Predicate.isTagged(error, "PersistenceError")

/** A call to the agent's owner, with the cluster's own failures on the way as `ServiceUnavailable`. */
const toOwner = <A, E, R>(call: Effect.Effect<A, E, R>) =>
  Effect.catchIf(call, isOnTheWay<E>, (error) => Effect.fail(unreachable(error)))

const handlers = (options: Options) =>
  RunnerApi.toLayer(Effect.gen(function*() {
    const sharding = yield* Sharding.Sharding
    const agents = yield* Agents
    const config = yield* ReliabilityConfig
    const client = yield* AgentEntity.client
    const within = (operation: OperationId) => Resilience.timeoutAfter(config.timeoutOf(operation), operation, "agents")
    const owned = (name: string) => sharding.hasShardId(sharding.getShardId(EntityId.make(name), "default"))

    const create = (name: string, type: string): Effect.Effect<typeof Created.Type, AgentsError> =>
      Effect.flatMap(validateName(name), (valid) =>
        client(valid).Create({ type }).pipe(toOwner, within("agent_creation")))

    return RunnerApi.of({
      Info: () =>
        agents.list.pipe(
          Effect.map((list) => list.map((agent) => agent.name).filter(owned)),
          Effect.map((owned) => ({
            pid: process.pid,
            store: options.store,
            ...Option.match(options.runner, { onNone: () => ({}), onSome: (runner) => ({ runner }) }),
            agents: owned
          }))
        ),
      Create: ({ name, type }) =>
        name !== undefined
          ? create(name, type)
          : Effect.retry(
            Effect.flatMap(Random.nextIntBetween(0, 0x7fffffff), (n) => create(`agent-${n.toString(16).padStart(8, "0")}`, type)),
            { times: 3, while: (error) => error._tag === "AgentExists" }
          ),
      Command: ({ name, prompt }) =>
        client(name).Command({ prompt }).pipe(toOwner, within("operator_file_prep")),
      Result: ({ file, name }) =>
        client(name).Result({ file }).pipe(toOwner, within("file_read")),
      List: () => agents.list,
      Delete: ({ keepDirectory, name }) =>
        client(name).Delete({ keepDirectory }).pipe(toOwner, within("agent_cleanup"))
    })
  }))

/** The bearer token of a request, or "". */
const bearer = (request: HttpServerRequest.HttpServerRequest): string => {
  const header = request.headers["authorization"] ?? ""
  return header.startsWith("Bearer ") ? header.slice("Bearer ".length) : ""
}

/**
 * Serves the API on 127.0.0.1 and publishes `runner.json` once it listens; the file is removed
 * when the layer is released (before the cluster stops).
 */
export const layer = (options: Options) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const rpc = yield* RpcServer.toHttpApp(RunnerApi, { disableFatalDefects: true, disableTracing: true })
    const app = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      StateFile.tokenMatches(options.token, bearer(request))
        ? rpc
        : HttpServerResponse.text("a big3 runner: send the token of runner.json as Authorization: Bearer <token>", {
          status: 401
        }))
    yield* HttpServer.serveEffect(app)
    const port = yield* HttpServer.addressWith((address) => Effect.succeed(address._tag === "TcpAddress" ? address.port : options.port))
    const url = `http://127.0.0.1:${port}`
    const startedAt = yield* Clock.currentTimeMillis
    const file = yield* StateFile.publish(options.stateDir, {
      version: 1,
      pid: process.pid,
      url,
      token: options.token,
      ...Option.match(options.runner, { onNone: () => ({}), onSome: (runner) => ({ runner }) }),
      store: options.store,
      startedAt
    })
    yield* Effect.logInfo(`big3 serve: API on ${url} (token in ${file})`)
  })).pipe(
    Layer.provide(handlers(options)),
    Layer.provide(RpcSerialization.layerJson),
    Layer.provide(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: options.port }))
  )
