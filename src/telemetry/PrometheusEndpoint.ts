/**
 * The Prometheus endpoint: `GET /metrics` in the text exposition format (0.0.4), on a server
 * that lives as long as the scope it is started in. Loaded only when `BIG3_METRICS_PORT` is set.
 *
 * @internal
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Metrics from "../Metrics.js"
import { messageOf } from "../internal/messageOf.js"
import { type TelemetryError, telemetryError } from "./TelemetryError.js"

/** The content type Prometheus expects of the text format. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/** Serves `/metrics` on `host:port` until the scope closes; succeeds with the endpoint's URL. */
export const serve = (options: {
  readonly host: string
  readonly port: number
  readonly all: boolean
}): Effect.Effect<string, TelemetryError, Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { host: options.host, port: options.port }).pipe(
      Effect.mapError((error) =>
        telemetryError(
          `cannot serve /metrics on ${options.host}:${options.port} (BIG3_METRICS_PORT): ${messageOf(error.cause)}`
        )
      )
    )
    const scrape = Effect.map(Metrics.exposition({ all: options.all }), (text) => HttpServerResponse.text(text, { contentType }))
    // The resource is there for GET (and HEAD) only: any other method is a 405 saying so, as HTTP asks.
    const router = HttpRouter.empty.pipe(
      HttpRouter.all(
        "/metrics",
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          request.method === "GET" || request.method === "HEAD"
            ? scrape
            : Effect.succeed(HttpServerResponse.empty({ status: 405, headers: { allow: "GET, HEAD" } })))
      )
    )
    // A scrape is not work worth a span, and would put one in every trace export.
    yield* server.serve(router).pipe(HttpMiddleware.withTracerDisabledWhenEffect(() => true))
    const address = server.address
    const port = address._tag === "TcpAddress" ? address.port : options.port
    const host = options.host.includes(":") ? `[${options.host}]` : options.host
    return `http://${host}:${port}/metrics`
  })
