/**
 * The one way telemetry can fail: its endpoint or exporter cannot be set up. Exporting itself
 * never fails a caller.
 *
 * @internal
 */
import * as Schema from "effect/Schema"

/** The `/metrics` endpoint could not listen, or the OTLP exporter could not be loaded. */
export class TelemetryError extends Schema.TaggedError<TelemetryError>()("TelemetryError", {
  service: Schema.Literal("telemetry"),
  message: Schema.String,
  retryable: Schema.Literal(false)
}) {}

export const telemetryError = (message: string): TelemetryError =>
  new TelemetryError({ service: "telemetry", message, retryable: false })
