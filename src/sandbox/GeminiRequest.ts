/**
 * The Gemini emulator's reading of a request: field names as the real API knows them (it answers
 * 400 `INVALID_ARGUMENT` for an unknown one, in either JSON spelling), the `computerUse` tool's
 * enums, roles, the `data` oneof of a part, Gemini 3's thought signatures, and token counts.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type { Issue } from "./Http.js"
import { approxTokens, decode, tooDeep } from "./Http.js"

const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const Blob = Schema.Struct({ mimeType: Schema.String, data: Schema.String })
const FunctionCall = Schema.Struct({ name: Schema.String, args: Schema.optional(Schema.Unknown), id: Schema.optional(Schema.String) })
const FunctionResponse = Schema.Struct({ name: Schema.String, response: Schema.optional(Schema.Unknown) }, Rest)

export const Part = Schema.Struct({
  text: Schema.optional(Schema.String),
  inlineData: Schema.optional(Blob),
  functionCall: Schema.optional(FunctionCall),
  functionResponse: Schema.optional(FunctionResponse),
  thought: Schema.optional(Schema.Boolean),
  thoughtSignature: Schema.optional(Schema.String)
}, Rest)
export type Part = typeof Part.Type

const Content = Schema.Struct({ role: Schema.optional(Schema.String), parts: Schema.Array(Part) })
export type Content = typeof Content.Type

const FunctionDeclaration = Schema.Struct({
  name: Schema.String,
  description: Schema.optional(Schema.String),
  parameters: Schema.optional(Schema.Unknown),
  parametersJsonSchema: Schema.optional(Schema.Unknown)
}, Rest)
export type FunctionDeclaration = typeof FunctionDeclaration.Type

/** An enum field: a value name, or its number (proto JSON takes either). */
const EnumValue = Schema.Union(Schema.String, Schema.Int)

const ComputerUse = Schema.Struct({
  environment: Schema.optional(EnumValue),
  excludedPredefinedFunctions: Schema.optional(Schema.Array(Schema.String)),
  enablePromptInjectionDetection: Schema.optional(Schema.Boolean),
  disabledSafetyPolicies: Schema.optional(Schema.Array(EnumValue))
})

const Tool = Schema.Struct({
  functionDeclarations: Schema.optional(Schema.Array(FunctionDeclaration)),
  computerUse: Schema.optional(ComputerUse)
}, Rest)

const GenerationConfig = Schema.Struct({
  maxOutputTokens: Schema.optional(Schema.Number),
  thinkingConfig: Schema.optional(Schema.Struct({
    thinkingBudget: Schema.optional(Schema.Number),
    includeThoughts: Schema.optional(Schema.Boolean)
  }, Rest))
}, Rest)

const ToolConfig = Schema.Struct({
  functionCallingConfig: Schema.optional(Schema.Struct({
    mode: Schema.optional(Schema.String),
    allowedFunctionNames: Schema.optional(Schema.Array(Schema.String))
  }))
})

/** The part of a GenerateContentRequest the sandbox reads (names already in camelCase). */
export const GenerateContentRequest = Schema.Struct({
  contents: Schema.Array(Content),
  tools: Schema.optional(Schema.Array(Tool)),
  toolConfig: Schema.optional(ToolConfig),
  systemInstruction: Schema.optional(Schema.Struct({ role: Schema.optional(Schema.String), parts: Schema.Array(Part) })),
  generationConfig: Schema.optional(GenerationConfig)
}, Rest)
export type GenerateContentRequest = typeof GenerateContentRequest.Type

/** A 400 the real API gives, before it is written in Google's error format. */
export interface Rejection {
  readonly message: string
  /** `google.rpc.BadRequest` field violations, when the API lists them. */
  readonly fieldViolations?: ReadonlyArray<{ readonly field: string; readonly description: string }> | undefined
}

// ---------------------------------------------------------------------------------------------
// Field names (from the public REST reference and the converters of the official JS SDK)
// ---------------------------------------------------------------------------------------------

const names = (...list: ReadonlyArray<string>): ReadonlySet<string> => new Set(list)

const requestFields = names(
  "model",
  "contents",
  "tools",
  "toolConfig",
  "safetySettings",
  "systemInstruction",
  "generationConfig",
  "cachedContent",
  "serviceTier",
  "store",
  "labels",
  "continuationToken"
)
const countTokensFields = names("contents", "generateContentRequest")
const contentFields = names("role", "parts")
const partFields = names(
  "text",
  "inlineData",
  "fileData",
  "functionCall",
  "functionResponse",
  "executableCode",
  "codeExecutionResult",
  "thought",
  "thoughtSignature",
  "videoMetadata",
  "partMetadata",
  "mediaResolution",
  "toolCall",
  "toolResponse",
  "audioTranscription",
  "speechMetadata",
  "mediaProcessing"
)
const generationConfigFields = names(
  "temperature",
  "topP",
  "topK",
  "candidateCount",
  "maxOutputTokens",
  "stopSequences",
  "responseLogprobs",
  "logprobs",
  "presencePenalty",
  "frequencyPenalty",
  "seed",
  "responseMimeType",
  "responseSchema",
  "responseJsonSchema",
  "responseModalities",
  "mediaResolution",
  "speechConfig",
  "thinkingConfig",
  "audioTranscriptionConfig",
  "imageConfig",
  "enableEnhancedCivicAnswers",
  "enableAffectiveDialog"
)
const thinkingConfigFields = names("thinkingBudget", "includeThoughts", "thinkingLevel")
const toolFields = names(
  "functionDeclarations",
  "computerUse",
  "googleSearch",
  "googleSearchRetrieval",
  "codeExecution",
  "urlContext",
  "googleMaps",
  "fileSearch",
  "retrieval",
  "enterpriseWebSearch",
  "mcpServers",
  "exaAiSearch",
  "parallelAiSearch"
)

const computerUseFields = names(
  "environment",
  "excludedPredefinedFunctions",
  "enablePromptInjectionDetection",
  "disabledSafetyPolicies"
)
const environments = names("ENVIRONMENT_UNSPECIFIED", "ENVIRONMENT_BROWSER", "ENVIRONMENT_MOBILE", "ENVIRONMENT_DESKTOP")
const safetyPolicies = names(
  "SAFETY_POLICY_UNSPECIFIED",
  "FINANCIAL_TRANSACTIONS",
  "SENSITIVE_DATA_MODIFICATION",
  "COMMUNICATION_TOOL",
  "ACCOUNT_CREATION",
  "DATA_MODIFICATION",
  "USER_CONSENT_MANAGEMENT",
  "LEGAL_TERMS_AND_AGREEMENTS"
)
// The enums are nested in the proto's Tool.ComputerUse, as Environment is; error messages name them in full.
const computerUseType = "type.googleapis.com/google.ai.generativelanguage.v1beta.Tool.ComputerUse"

/** The members of the `data` oneof of a Part. */
const dataFields = names(
  "text",
  "inlineData",
  "fileData",
  "functionCall",
  "functionResponse",
  "executableCode",
  "codeExecutionResult"
)

/** Proto JSON accepts `snake_case` and `lowerCamelCase` for every field. */
const camel = (name: string): string => name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())

/** Error paths name fields as the proto does, in `snake_case` (`generation_config.thinking_config`). */
const snake = (name: string): string => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)

/** A field the API's JSON parser refuses: its proto path and the parser's words. */
interface Violation {
  readonly field: string
  readonly description: string
}

/**
 * Checks the names of one message's fields against `known` and returns the message with its
 * names in camelCase; `visit` continues into the fields that are messages themselves.
 */
const normalize = (
  value: unknown,
  known: ReadonlySet<string>,
  at: string,
  refused: Array<Violation>,
  visit: (name: string, value: unknown, at: string) => unknown = (_, v) => v
): unknown => {
  if (!Predicate.isRecord(value)) return value
  const out: { [key: string]: unknown } = {}
  for (const [key, field] of Object.entries(value)) {
    const name = camel(key)
    if (!known.has(name)) {
      refused.push({
        field: at,
        description: `Invalid JSON payload received. Unknown name "${key}"${at === "" ? "" : ` at '${at}'`}: Cannot find field.`
      })
      continue
    }
    out[name] = visit(name, field, at === "" ? snake(name) : `${at}.${snake(name)}`)
  }
  return out
}

/** An enum field holds one of its value names, or a number (proto3 enums are open). */
const checkEnum = (value: unknown, known: ReadonlySet<string>, type: string, at: string, refused: Array<Violation>) => {
  if (Number.isInteger(value) || (typeof value === "string" && known.has(value))) return
  refused.push({ field: at, description: `Invalid value at '${at}' (${type}), ${JSON.stringify(value)}` })
}

const eachOf = (value: unknown, f: (item: unknown, at: string) => unknown, at: string): unknown =>
  Array.isArray(value) ? value.map((item: unknown, i) => f(item, `${at}[${i}]`)) : value

const normalizeContent = (refused: Array<Violation>) => (content: unknown, at: string): unknown =>
  normalize(content, contentFields, at, refused, (name, value, path) =>
    name === "parts" ? eachOf(value, (part, partAt) => normalize(part, partFields, partAt, refused), path) : value)

const normalizeComputerUse = (refused: Array<Violation>) => (computerUse: unknown, at: string): unknown =>
  normalize(computerUse, computerUseFields, at, refused, (name, value, path) => {
    if (name === "environment") checkEnum(value, environments, `${computerUseType}.Environment`, path, refused)
    if (name === "disabledSafetyPolicies") {
      eachOf(value, (policy, policyAt) =>
        checkEnum(policy, safetyPolicies, `${computerUseType}.SafetyPolicy`, policyAt, refused), path)
    }
    return value
  })

/** `root` is the request's own proto path: "" at the top, `generate_content_request` when wrapped. */
const normalizeRequest = (body: unknown, known: ReadonlySet<string>, refused: Array<Violation>, root = ""): unknown =>
  normalize(body, known, root, refused, (name, value, at) => {
    switch (name) {
      case "contents":
        return eachOf(value, normalizeContent(refused), at)
      case "systemInstruction":
        return normalizeContent(refused)(value, at)
      case "generationConfig":
        return normalize(value, generationConfigFields, at, refused, (inner, config, innerAt) =>
          inner === "thinkingConfig" ? normalize(config, thinkingConfigFields, innerAt, refused) : config)
      case "tools":
        return eachOf(value, (tool, toolAt) =>
          normalize(tool, toolFields, toolAt, refused, (inner, field, innerAt) =>
            inner === "computerUse" ? normalizeComputerUse(refused)(field, innerAt) : field), at)
      case "generateContentRequest":
        return normalizeRequest(value, requestFields, refused, at)
      default:
        return value
    }
  })

const refusal = (violations: ReadonlyArray<Violation>): Rejection => ({
  message: violations.map((violation) => violation.description).join("\n"),
  fieldViolations: violations
})

const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((key) => typeof key === "number" ? `[${key}]` : `.${String(key)}`).join("")

/** Schema failures in Google's style: one "* GenerateContentRequest.path: message" line per issue. */
const schemaIssues = (issues: ReadonlyArray<Issue>): Rejection => ({
  message: issues.map((issue) =>
    `* GenerateContentRequest${pathText(issue.path)}: ${issue.missing ? "required field is not specified" : issue.message}\n`
  ).join("")
})

/** What the schema cannot say: contents and parts present, one `data` field per part, valid roles. */
const structure = (request: GenerateContentRequest): Rejection | undefined => {
  if (request.contents.length === 0) {
    return schemaIssues([{ path: ["contents"], message: "contents is not specified", missing: false }])
  }
  // The API names the valid roles rather than the field.
  if (request.contents.some((content) => content.role !== undefined && content.role !== "" && content.role !== "user" && content.role !== "model")) {
    return { message: "Please use a valid role: user, model." }
  }
  const issues: Array<Issue> = []
  request.contents.forEach((content, i) => {
    if (content.parts.length === 0) {
      issues.push({ path: ["contents", i, "parts"], message: "contents.parts must not be empty.", missing: false })
    }
    content.parts.forEach((part, j) => {
      const set = Object.keys(part).filter((key) => dataFields.has(key))
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
  return issues.length === 0 ? undefined : schemaIssues(issues)
}

const countParts = (content: Content, field: "functionCall" | "functionResponse"): number =>
  content.parts.filter((part) => part[field] !== undefined).length

/**
 * A model turn's function calls are answered, in the turn after it, by as many function
 * responses: the API refuses a request that answers some of them only.
 */
const unansweredCalls = (request: GenerateContentRequest): Rejection | undefined => {
  const short = request.contents.some((content, i) => {
    const next = request.contents[i + 1]
    if (content.role !== "model" || next === undefined) return false
    const responses = countParts(next, "functionResponse")
    return responses > 0 && responses !== countParts(content, "functionCall")
  })
  return short
    ? {
      message: "Please ensure that the number of function response parts is equal to the number of function call " +
        "parts of the function call turn."
    }
    : undefined
}

/** Gemini 3 models validate the thought signatures of the current turn's function calls. */
export const validatesThoughtSignatures = (model: string): boolean => /^gemini-3/.test(model)

const isUserText = (content: Content): boolean =>
  (content.role === undefined || content.role === "" || content.role === "user") &&
  content.parts.some((part) => part.text !== undefined)

/**
 * Gemini 3: in the current turn (everything after the last user message with text), the first
 * `functionCall` part of each model step must carry the `thoughtSignature` it came with.
 */
const missingSignature = (request: GenerateContentRequest): Rejection | undefined => {
  let start = -1
  request.contents.forEach((content, i) => {
    if (isUserText(content)) start = i
  })
  for (let i = start + 1; i < request.contents.length; i++) {
    const content = request.contents[i]!
    if (content.role !== "model") continue
    const first = content.parts.find((part) => part.functionCall !== undefined)
    if (first?.functionCall !== undefined && (first.thoughtSignature ?? "") === "") {
      return {
        message: "Function call is missing a thought_signature in functionCall parts. This is required for tools to " +
          "work correctly, and missing thought_signature may lead to degraded model performance. Additional data, " +
          `function call \`default_api:${first.functionCall.name}\` , position ${i + 1}. Please refer to ` +
          "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
      }
    }
  }
  return undefined
}

/**
 * Reads a generateContent body (or, with `countTokens`, a countTokens body, whose
 * `generateContentRequest` wins when present) as the real API would: a 400 for JSON that is not
 * JSON or nests too deep, an unknown field, a `computerUse` enum value outside its enum, a bad
 * role, a part with no or two `data` fields, a turn of function calls answered by a different
 * number of function responses, or (Gemini 3) a function call sent back without its thought
 * signature.
 */
export const readRequest = (
  text: string,
  options: { readonly model: string; readonly countTokens?: boolean | undefined }
): Either.Either<GenerateContentRequest, Rejection> => {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return Either.left({ message: "Invalid JSON payload received. Unexpected token." })
  }
  // Google's JSON parser has a nesting limit too; the sandbox's walkers would overflow the stack past it.
  const deep = tooDeep(body)
  if (deep !== undefined) return Either.left({ message: `Invalid JSON payload received. The request ${deep}.` })
  const refused: Array<Violation> = []
  const normalized = normalizeRequest(body, options.countTokens === true ? countTokensFields : requestFields, refused)
  if (refused.length > 0) return Either.left(refusal(refused))
  const selected = options.countTokens === true && Predicate.isRecord(normalized) &&
      normalized["generateContentRequest"] !== undefined
    ? normalized["generateContentRequest"]
    : normalized
  return Either.flatMap(Either.mapLeft(decode(GenerateContentRequest, selected), schemaIssues), (request) => {
    const generating = options.countTokens !== true
    const rejection = structure(request) ?? (generating ? unansweredCalls(request) : undefined) ??
      (validatesThoughtSignatures(options.model) && generating ? missingSignature(request) : undefined)
    return rejection === undefined ? Either.right(request) : Either.left(rejection)
  })
}

// ---------------------------------------------------------------------------------------------
// Reading a valid request
// ---------------------------------------------------------------------------------------------

/** The text of some parts, joined by newlines (thoughts included). */
export const partText = (parts: ReadonlyArray<Part>): string =>
  parts.flatMap((part) => part.text === undefined ? [] : [part.text]).join("\n")

/** The text of the last user turn that has any. */
export const lastUserText = (request: GenerateContentRequest): string => {
  const turn = [...request.contents].reverse().find((content) => isUserText(content) && partText(content.parts) !== "")
  return turn === undefined ? "" : partText(turn.parts)
}

/** Gemini's flat token price of one image. */
const tokensPerImage = 258

/** Prompt tokens by modality: text by length, 258 per inline blob. */
export const promptTokens = (request: GenerateContentRequest): { readonly text: number; readonly image: number } => {
  const parts = [...request.contents.flatMap((content) => content.parts), ...(request.systemInstruction?.parts ?? [])]
  const text = parts.map((part) => part.text ?? JSON.stringify(part.functionCall ?? part.functionResponse ?? "")).join("")
  return { text: approxTokens(text), image: tokensPerImage * parts.filter((part) => part.inlineData !== undefined).length }
}

/** `promptTokensDetails` as the API writes it: one entry per modality present. */
export const promptTokensDetails = (tokens: { readonly text: number; readonly image: number }) => [
  { modality: "TEXT", tokenCount: tokens.text },
  ...(tokens.image > 0 ? [{ modality: "IMAGE", tokenCount: tokens.image }] : [])
]

/** The declared functions, and whether the computer-use tool is on. */
export const declarationsOf = (request: GenerateContentRequest): {
  readonly functions: ReadonlyArray<FunctionDeclaration>
  readonly computerUse: boolean
} => {
  const tools = request.tools ?? []
  return {
    functions: tools.flatMap((tool) => tool.functionDeclarations ?? []),
    computerUse: tools.some((tool) => tool.computerUse !== undefined)
  }
}

/** Whether the last turn answers a function call (so the model has its result). */
export const answersFunctionCall = (request: GenerateContentRequest): boolean => {
  const last = request.contents[request.contents.length - 1]
  return last !== undefined && last.parts.some((part) => part.functionResponse !== undefined)
}

/**
 * Whether the model thinks: Gemini 2.5 and 3 do, unless a 2.5 request sets `thinkingBudget: 0`.
 * Thinking models report `thoughtsTokenCount` and sign their function calls.
 */
export const thinks = (model: string, request: GenerateContentRequest): boolean =>
  /^gemini-3/.test(model) ||
  (/^gemini-2\.5/.test(model) && request.generationConfig?.thinkingConfig?.thinkingBudget !== 0)
