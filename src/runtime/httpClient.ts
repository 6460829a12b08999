/**
 * The default `HttpClient`: @effect/platform-node's undici client, loaded on the first request.
 * `big3 events send` runs once per hook event and never makes such a request (its transport is a
 * raw undici `Pool`), yet loading undici's whole index with the platform client cost it about a
 * fifth of its start-up.
 *
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { messageOf } from "../internal/messageOf.js"

/** The undici `HttpClient`, built in the layer's scope when the first request is made. */
export const lazyUndici: Layer.Layer<HttpClient.HttpClient> = Layer.scoped(
  HttpClient.HttpClient,
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const client = yield* Effect.cached(
      Effect.tryPromise({
        try: () => import("@effect/platform-node/NodeHttpClient"),
        catch: (cause) => `cannot load the HTTP client (${messageOf(cause)}); reinstall big3`
      }).pipe(
        Effect.flatMap((module) => Layer.buildWithScope(module.layerUndici, scope)),
        Effect.map((context) => Context.get(context, HttpClient.HttpClient))
      )
    )
    return HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
      (request) =>
        Effect.flatMap(request, (request) =>
          Effect.flatMap(
            Effect.mapError(client, (description) =>
              new HttpClientError.RequestError({ request, reason: "Transport", description })),
            (undici) => undici.execute(request)
          )),
      Effect.succeed
    )
  })
)
