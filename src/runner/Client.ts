/**
 * The CLI's side of a runner: finds it through `runner.json` in the state directory and calls its
 * API (`RunnerApi` over HTTP, with the file's token). Transport failures become the taxonomy's
 * errors at this boundary: no answer is a `NetworkError`, a refused token an `Unauthorized`.
 *
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Agent, AgentsError, Created, OperatorFileContent } from "../Agents.js"
import { NetworkError, Unauthorized } from "../Errors.js"
import { RunnerApi } from "./Protocol.js"
import type { RunnerInfo } from "./Protocol.js"
import * as StateFile from "./StateFile.js"

/** The failures of a call to a runner: the agent's own, or the runner's transport. */
export type CallError = AgentsError | NetworkError | Unauthorized

/** A runner, as the CLI drives it. */
export interface Remote {
  /** The API's URL. */
  readonly url: string
  /** What `runner.json` says about it. */
  readonly contents: StateFile.Contents
  readonly info: Effect.Effect<RunnerInfo, CallError>
  readonly create: (input: { readonly name?: string | undefined; readonly type: string }) => Effect.Effect<Created, CallError>
  readonly command: (name: string, prompt: string) => Effect.Effect<{ readonly operatorFile: string }, CallError>
  readonly result: (name: string, file?: string | undefined) => Effect.Effect<OperatorFileContent, CallError>
  readonly list: Effect.Effect<ReadonlyArray<Agent>, CallError>
  readonly delete: (name: string, options: { readonly keepDirectory: boolean }) => Effect.Effect<void, CallError>
}

const statusOf = (error: RpcClientError): number | undefined => {
  const cause = error.cause
  return HttpClientError.isHttpClientError(cause) && cause._tag === "ResponseError" ? cause.response.status : undefined
}

const describe = (error: RpcClientError): string => {
  const cause = error.cause
  if (Predicate.hasProperty(cause, "message") && typeof cause.message === "string" && cause.message !== "") {
    return cause.message
  }
  return error.message
}

/** The client of the runner `contents` describes (scoped: its HTTP connections close with it). */
export const make = (contents: StateFile.Contents): Effect.Effect<Remote, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = contents.url
    // Built in the caller's scope: the connections must outlive this constructor.
    const undici = yield* Layer.build(NodeHttpClient.layerUndici)
    const http = Context.get(undici, HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        request.pipe(HttpClientRequest.prependUrl(url), HttpClientRequest.bearerToken(Redacted.value(contents.token)))),
      HttpClient.filterStatusOk
    )
    const protocol = yield* RpcClient.makeProtocolHttp(http).pipe(Effect.provide(RpcSerialization.layerJson))
    const client = yield* RpcClient.make(RunnerApi).pipe(Effect.provideService(RpcClient.Protocol, protocol))

    const transport = (error: RpcClientError): Effect.Effect<never, NetworkError | Unauthorized> => {
      const status = statusOf(error)
      return Effect.fail(
        status === 401 || status === 403
          ? new Unauthorized({
            service: "runner",
            status,
            message: `the runner at ${url} refused the token of runner.json (was it replaced by another runner?)`
          })
          : new NetworkError({ service: "runner", message: `no runner answers at ${url}: ${describe(error)}` })
      )
    }

    return {
      url,
      contents,
      info: client.Info().pipe(Effect.catchTag("RpcClientError", transport)),
      create: (input) => client.Create(input).pipe(Effect.catchTag("RpcClientError", transport)),
      command: (name, prompt) => client.Command({ name, prompt }).pipe(Effect.catchTag("RpcClientError", transport)),
      result: (name, file) => client.Result({ name, file }).pipe(Effect.catchTag("RpcClientError", transport)),
      list: client.List().pipe(Effect.catchTag("RpcClientError", transport)),
      delete: (name, options) =>
        client.Delete({ name, keepDirectory: options.keepDirectory }).pipe(Effect.catchTag("RpcClientError", transport))
    } satisfies Remote
  })

/**
 * The runner serving `stateDir`: `None` when there is no `runner.json` there. Whether it still
 * answers is for the caller to ask (`info`).
 */
export const connect = (stateDir: string): Effect.Effect<Option.Option<Remote>, StateFile.RunnerError, Scope.Scope> =>
  Effect.flatMap(StateFile.read(stateDir), Option.match({
    onNone: () => Effect.succeed(Option.none()),
    onSome: (contents) => Effect.asSome(make(contents))
  }))
