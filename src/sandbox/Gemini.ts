/**
 * Emulator of Gemini's `POST /v1beta/models/{model}:generateContent` (and `:countTokens`), in the
 * public REST shapes, with Google's error format (`{"error":{"code","message","status","details"?}}`).
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as ComputerUse from "./ComputerUse.js"
import { retryAfterSeconds } from "./FaultPlan.js"
import type { Answer, Incoming, Issue, Upstream } from "./Http.js"
import { approxTokens, decode, parseJson, pseudoId } from "./Http.js"

const Blob = Schema.Struct({ mimeType: Schema.String, data: Schema.String })
const FunctionCall = Schema.Struct({ name: Schema.String, args: Schema.optional(Schema.Unknown) })
const FunctionResponse = Schema.Struct({ name: Schema.String, response: Schema.optional(Schema.Unknown) })
const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })

const Part = Schema.Struct({
  text: Schema.optional(Schema.String),
  inlineData: Schema.optional(Blob),
  functionCall: Schema.optional(FunctionCall),
  functionResponse: Schema.optional(FunctionResponse)
}, Rest)
type Part = typeof Part.Type

const Content = Schema.Struct({
  role: Schema.optional(Schema.String),
  parts: Schema.Array(Part)
})
type Content = typeof Content.Type

const ParameterSchema = Schema.Struct({
  type: Schema.optional(Schema.String),
  properties: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Struct({ type: Schema.optional(Schema.String) }, Rest) })),
  required: Schema.optional(Schema.Array(Schema.String))
}, Rest)

const FunctionDeclaration = Schema.Struct({
  name: Schema.String,
  description: Schema.optional(Schema.String),
  parameters: Schema.optional(ParameterSchema)
}, Rest)
type FunctionDeclaration = typeof FunctionDeclaration.Type

const Tool = Schema.Struct({
  functionDeclarations: Schema.optional(Schema.Array(FunctionDeclaration)),
  function_declarations: Schema.optional(Schema.Array(FunctionDeclaration)),
  computerUse: Schema.optional(Schema.Unknown),
  computer_use: Schema.optional(Schema.Unknown)
}, Rest)

/** The part of a GenerateContentRequest the sandbox reads; other fields are accepted and ignored. */
const GenerateContentRequest = Schema.Struct({
  contents: Schema.Array(Content),
  tools: Schema.optional(Schema.Array(Tool)),
  systemInstruction: Schema.optional(Schema.Struct({ role: Schema.optional(Schema.String), parts: Schema.Array(Part) })),
  generationConfig: Schema.optional(Schema.Unknown)
})
type GenerateContentRequest = typeof GenerateContentRequest.Type

/** The members of the `data` oneof of a Part, in both JSON spellings the API accepts. */
const dataFields = [
  "text",
  "inlineData",
  "inline_data",
  "functionCall",
  "function_call",
  "functionResponse",
  "function_response",
  "fileData",
  "file_data",
  "executableCode",
  "executable_code",
  "codeExecutionResult",
  "code_execution_result"
]

const statusNames: Readonly<Record<number, readonly [status: string, message: string]>> = {
  400: ["INVALID_ARGUMENT", "Request contains an invalid argument."],
  401: ["UNAUTHENTICATED", "Request had invalid authentication credentials."],
  403: ["PERMISSION_DENIED", "The caller does not have permission"],
  404: ["NOT_FOUND", "Requested entity was not found."],
  409: ["ABORTED", "The operation was aborted."],
  429: ["RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."],
  499: ["CANCELLED", "The operation was cancelled."],
  500: [
    "INTERNAL",
    "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
  ],
  501: ["UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."],
  502: ["UNAVAILABLE", "The service is currently unavailable."],
  503: ["UNAVAILABLE", "The model is overloaded. Please try again later."],
  504: ["DEADLINE_EXCEEDED", "Deadline expired before operation could complete."]
}

const statusName = (status: number): readonly [string, string] =>
  statusNames[status] ?? (status >= 500 ? ["INTERNAL", "Internal error encountered."] : ["FAILED_PRECONDITION", "Precondition check failed."])

/** google.protobuf.Duration in JSON: "3s", "1.500s". */
const protoDuration = (duration: Duration.Duration): string => {
  const millis = Math.max(0, Math.round(Duration.toMillis(duration)))
  return millis % 1000 === 0 ? `${millis / 1000}s` : `${(millis / 1000).toFixed(3)}s`
}

const errorResponse = (
  status: number,
  message: string,
  options: {
    readonly details?: ReadonlyArray<unknown>
    readonly retryAfter?: Option.Option<Duration.Duration>
  } = {}
): HttpServerResponse.HttpServerResponse => {
  const retryAfter = options.retryAfter ?? Option.none()
  const details = [
    ...(options.details ?? []),
    ...Option.match(retryAfter, {
      onNone: () => [],
      onSome: (delay) => [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: protoDuration(delay) }]
    })
  ]
  const [statusText] = statusName(status)
  return HttpServerResponse.unsafeJson(
    { error: { code: status, message, status: statusText, ...(details.length > 0 ? { details } : {}) } },
    {
      status,
      headers: Option.match(retryAfter, {
        onNone: () => ({}),
        onSome: (delay) => ({ "retry-after": String(retryAfterSeconds(delay)) })
      })
    }
  )
}

/** Google's answer to a request without any API key (403, not the 400 of a wrong key). */
const apiKeyMissing = errorResponse(
  403,
  "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
)

/** Google's answer to a wrong API key. */
const apiKeyInvalid = errorResponse(400, "API key not valid. Please pass a valid API key.", {
  details: [{
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    reason: "API_KEY_INVALID",
    domain: "googleapis.com",
    metadata: { service: "generativelanguage.googleapis.com" }
  }]
})

const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((key) => typeof key === "number" ? `[${key}]` : `.${String(key)}`).join("")

/** Validation failures in Google's style: one "* Request.path: message" line per issue. */
const invalidArgument = (issues: ReadonlyArray<Issue>): HttpServerResponse.HttpServerResponse =>
  errorResponse(
    400,
    issues.map((issue) =>
      `* GenerateContentRequest${pathText(issue.path)}: ${issue.missing ? "required field is not specified" : issue.message}\n`
    ).join("")
  )

/** Checks what the schema cannot say: contents present, parts present, one `data` field per part. */
const validate = (request: GenerateContentRequest): ReadonlyArray<Issue> => {
  if (request.contents.length === 0) {
    return [{ path: ["contents"], message: "contents is not specified", missing: false }]
  }
  const issues: Array<Issue> = []
  request.contents.forEach((content, i) => {
    if (content.parts.length === 0) {
      issues.push({ path: ["contents", i, "parts"], message: "contents.parts must not be empty.", missing: false })
    }
    content.parts.forEach((part, j) => {
      const set = Object.keys(part).filter((key) => dataFields.includes(key))
      if (set.length !== 1) {
        issues.push({
          path: ["contents", i, "parts", j, "data"],
          message: set.length === 0
            ? "required oneof field 'data' must have one initialized field"
            : `oneof field 'data' is already set. Cannot set '${set[1]}'`,
          missing: false
        })
      }
    })
  })
  return issues
}

const partText = (parts: ReadonlyArray<Part>): string =>
  parts.flatMap((part) => part.text === undefined ? [] : [part.text]).join("\n")

const isUserTurn = (content: Content): boolean => content.role === undefined || content.role === "user"

/** Tokens of the prompt: text by length, 258 per inline blob (Gemini's flat rate for an image). */
const promptTokens = (request: GenerateContentRequest): number => {
  const parts = [...request.contents.flatMap((content) => content.parts), ...(request.systemInstruction?.parts ?? [])]
  const text = parts.map((part) =>
    part.text ?? JSON.stringify(part.functionCall ?? part.functionResponse ?? "")
  ).join("")
  return approxTokens(text) + 258 * parts.filter((part) => part.inlineData !== undefined).length
}

const declarationsOf = (request: GenerateContentRequest): {
  readonly functions: ReadonlyArray<FunctionDeclaration>
  readonly computerUse: boolean
} => {
  const tools = request.tools ?? []
  return {
    functions: tools.flatMap((tool) => [...(tool.functionDeclarations ?? []), ...(tool.function_declarations ?? [])]),
    computerUse: tools.some((tool) => tool.computerUse !== undefined || tool.computer_use !== undefined)
  }
}

/** Plausible arguments for a declared function: each required parameter filled by its type. */
const argsFor = (declaration: FunctionDeclaration): Record<string, unknown> => {
  const properties = declaration.parameters?.properties ?? {}
  const args: Record<string, unknown> = {}
  for (const name of declaration.parameters?.required ?? []) {
    switch ((properties[name]?.type ?? "string").toLowerCase()) {
      case "number":
      case "integer":
        args[name] = 1
        break
      case "boolean":
        args[name] = true
        break
      case "array":
        args[name] = []
        break
      case "object":
        args[name] = {}
        break
      default:
        args[name] = "sandbox"
    }
  }
  return args
}

/**
 * The model's part: a `functionCall` when the request declares tools and its last turn is not
 * already a function response (so an agent loop ends after one call), otherwise text that
 * echoes the last user text.
 */
const answerPart = (request: GenerateContentRequest): Part => {
  const { computerUse, functions } = declarationsOf(request)
  const last = request.contents[request.contents.length - 1]
  const answeringFunction = last !== undefined && last.parts.some((part) =>
    part.functionResponse !== undefined || "function_response" in part
  )
  if ((functions.length > 0 || computerUse) && !answeringFunction) {
    const first = functions[0]
    return first === undefined
      ? { functionCall: { name: "click_at", args: { x: 500, y: 500 } } }
      : { functionCall: { name: first.name, args: argsFor(first) } }
  }
  const lastUser = [...request.contents].reverse().find((content) => isUserTurn(content) && partText(content.parts) !== "")
  return { text: `sandbox answer to: ${lastUser === undefined ? "" : partText(lastUser.parts)}` }
}

/** The upstream's error writers. */
export const upstream: Upstream = {
  error: (_incoming, status, retryAfter) => errorResponse(status, statusName(status)[1], { retryAfter }),
  malformed: () =>
    HttpServerResponse.text(`{"candidates":[{"content":{"role":"model","parts":[{"text":"sandbox`, {
      contentType: "application/json"
    }),
  notFound: () => errorResponse(404, "Requested entity was not found.")
}

const keyProblem = (incoming: Incoming, apiKey: Redacted.Redacted<string>): HttpServerResponse.HttpServerResponse | undefined => {
  const given = incoming.headers["x-goog-api-key"] ?? incoming.query["key"]
  if (given === undefined || given === "") return apiKeyMissing
  return given === Redacted.value(apiKey) ? undefined : apiKeyInvalid
}

const decodeRequest = (
  incoming: Incoming,
  select: (body: unknown) => unknown
): Either.Either<GenerateContentRequest, HttpServerResponse.HttpServerResponse> =>
  Either.flatMap(
    Either.mapLeft(parseJson(incoming.text), () =>
      errorResponse(400, "Invalid JSON payload received. Unexpected token.")),
    (body) =>
      Either.flatMap(
        Either.mapLeft(decode(GenerateContentRequest, select(body)), invalidArgument),
        (request) => {
          const issues = validate(request)
          return issues.length === 0 ? Either.right(request) : Either.left(invalidArgument(issues))
        }
      )
  )

/**
 * `POST /v1beta/models/{model}:generateContent`. With a computer-use `responder`, a request that
 * carries the `computerUse` tool is answered from its plan (see `ComputerUse.ts`).
 */
export const generateContent = (apiKey: Redacted.Redacted<string>, responder?: ComputerUse.Responder): Answer => (incoming) =>
  Effect.sync(() => {
    const denied = keyProblem(incoming, apiKey)
    if (denied !== undefined) return denied
    const model = incoming.params["model"] ?? ""
    return Either.match(decodeRequest(incoming, (body) => body), {
      onLeft: (response) => response,
      onRight: (request) => {
        const promptTokenCount = promptTokens(request)
        const responseId = pseudoId(incoming.sequence, 22)
        const blocked = request.contents.some((content) => partText(content.parts).includes("BLOCK_ME"))
        if (blocked) {
          return HttpServerResponse.unsafeJson({
            promptFeedback: { blockReason: "SAFETY" },
            usageMetadata: { promptTokenCount, totalTokenCount: promptTokenCount },
            modelVersion: model,
            responseId
          })
        }
        const planned = responder !== undefined && declarationsOf(request).computerUse ? responder.next() : undefined
        const part = answerPart(request)
        const candidatesTokenCount = approxTokens(
          planned === undefined ? part.text ?? JSON.stringify(part.functionCall) : JSON.stringify(planned.content ?? "")
        )
        return HttpServerResponse.unsafeJson({
          candidates: [planned ?? { content: { role: "model", parts: [part] }, finishReason: "STOP", index: 0 }],
          usageMetadata: {
            promptTokenCount,
            candidatesTokenCount,
            totalTokenCount: promptTokenCount + candidatesTokenCount
          },
          modelVersion: model,
          responseId
        })
      }
    })
  })

/** `POST /v1beta/models/{model}:countTokens`: `{"totalTokens": n}`. */
export const countTokens = (apiKey: Redacted.Redacted<string>): Answer => (incoming) =>
  Effect.sync(() => {
    const denied = keyProblem(incoming, apiKey)
    if (denied !== undefined) return denied
    const select = (body: unknown): unknown =>
      typeof body === "object" && body !== null && "generateContentRequest" in body
        ? body.generateContentRequest
        : body
    return Either.match(decodeRequest(incoming, select), {
      onLeft: (response) => response,
      onRight: (request) => HttpServerResponse.unsafeJson({ totalTokens: promptTokens(request) })
    })
  })
