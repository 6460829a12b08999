/**
 * Schemas of Gemini's public REST shapes for `models.generateContent` (v1beta).
 *
 * Requests are typed closely so that a typo is a compile error; responses are decoded leniently:
 * the client decodes with `onExcessProperty: "preserve"`, so fields this file does not name
 * (`thoughtSignature` on a new part kind, `citationMetadata`, …) survive decoding and are sent
 * back unchanged when a model turn is echoed into the next request. Open enumerations
 * (`finishReason`, `blockReason`, harm categories) are plain strings because Google adds values.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** Raw bytes inline, base64 encoded (screenshots for computer use). */
export const Blob = Schema.Struct({
  mimeType: Schema.String,
  /** Base64 of the bytes. */
  data: Schema.String
})
export type Blob = typeof Blob.Type

/** A file by URI (uploaded through the Files API). */
export const FileData = Schema.Struct({
  mimeType: Schema.optional(Schema.String),
  fileUri: Schema.String
})
export type FileData = typeof FileData.Type

/** The model asks the caller to run a function (or a computer-use action such as `click_at`). */
export const FunctionCall = Schema.Struct({
  name: Schema.String,
  args: Schema.optional(JsonObject),
  id: Schema.optional(Schema.String)
})
export type FunctionCall = typeof FunctionCall.Type

/** Bytes inside a function response (the PNG screenshot that answers a computer-use action). */
export const FunctionResponseBlob = Schema.Struct({
  mimeType: Schema.String,
  /** Base64 of the bytes. */
  data: Schema.String
})
export type FunctionResponseBlob = typeof FunctionResponseBlob.Type

/** Media carried by a `FunctionResponse`: `inlineData` (the API supports no other kind yet). */
export const FunctionResponsePart = Schema.Struct({
  inlineData: Schema.optional(FunctionResponseBlob)
})
export type FunctionResponsePart = typeof FunctionResponsePart.Type

/**
 * The caller's answer to a `FunctionCall`, matched by `name` (and `id` when the call had one).
 * `parts` carries media beside the JSON `response`: computer use answers each action with the new
 * screenshot there.
 */
export const FunctionResponse = Schema.Struct({
  name: Schema.String,
  response: JsonObject,
  id: Schema.optional(Schema.String),
  parts: Schema.optional(Schema.Array(FunctionResponsePart)),
  willContinue: Schema.optional(Schema.Boolean)
})
export type FunctionResponse = typeof FunctionResponse.Type

/**
 * What computer use puts in a call's `args.safety_decision`: `decision` is
 * `"require_confirmation"` when a person must confirm the action before it runs (the answer then
 * carries `safety_acknowledgement: "true"`), and `explanation` says why.
 */
export const SafetyDecision = Schema.Struct({
  decision: Schema.String,
  explanation: Schema.optional(Schema.String)
})
export type SafetyDecision = typeof SafetyDecision.Type

/**
 * One part of a turn. The REST API makes `text`, `inlineData`, `fileData`, `functionCall`,
 * `functionResponse`, `executableCode` and `codeExecutionResult` a oneof: set exactly one of them.
 * `thought` marks the model's reasoning; `thoughtSignature` must be sent back with the part it
 * came on for multi-turn function calling.
 */
export const Part = Schema.Struct({
  text: Schema.optional(Schema.String),
  inlineData: Schema.optional(Blob),
  fileData: Schema.optional(FileData),
  functionCall: Schema.optional(FunctionCall),
  functionResponse: Schema.optional(FunctionResponse),
  executableCode: Schema.optional(Schema.Unknown),
  codeExecutionResult: Schema.optional(Schema.Unknown),
  thought: Schema.optional(Schema.Boolean),
  thoughtSignature: Schema.optional(Schema.String),
  videoMetadata: Schema.optional(Schema.Unknown)
})
export type Part = typeof Part.Type

/** Who spoke a turn. */
export const Role = Schema.Literal("user", "model")
export type Role = typeof Role.Type

/** One turn of the conversation. */
export const Content = Schema.Struct({
  role: Schema.optional(Role),
  parts: Schema.Array(Part)
})
export type Content = typeof Content.Type

/** The system instruction: a `Content` whose role, if given, is ignored by the API. */
export const SystemInstruction = Schema.Struct({
  role: Schema.optional(Schema.String),
  parts: Schema.Array(Part)
})
export type SystemInstruction = typeof SystemInstruction.Type

/** A function the model may call; `parameters` is an OpenAPI-style schema object. */
export const FunctionDeclaration = Schema.Struct({
  name: Schema.String,
  description: Schema.optional(Schema.String),
  parameters: Schema.optional(JsonObject),
  parametersJsonSchema: Schema.optional(Schema.Unknown),
  response: Schema.optional(JsonObject),
  behavior: Schema.optional(Schema.String)
})
export type FunctionDeclaration = typeof FunctionDeclaration.Type

/** The environment of a browser agent's `computerUse` tool. */
export const environmentBrowser = "ENVIRONMENT_BROWSER"

/** The computer-use tool; `environment` is `"ENVIRONMENT_BROWSER"` for browser agents. */
export const ComputerUse = Schema.Struct({
  environment: Schema.String,
  excludedPredefinedFunctions: Schema.optional(Schema.Array(Schema.String))
})
export type ComputerUse = typeof ComputerUse.Type

/** Tools the model may use. */
export const Tool = Schema.Struct({
  functionDeclarations: Schema.optional(Schema.Array(FunctionDeclaration)),
  computerUse: Schema.optional(ComputerUse),
  googleSearch: Schema.optional(JsonObject),
  codeExecution: Schema.optional(JsonObject),
  urlContext: Schema.optional(JsonObject)
})
export type Tool = typeof Tool.Type

/** How the model may call functions: mode `AUTO`, `ANY`, `NONE` or `VALIDATED`. */
export const ToolConfig = Schema.Struct({
  functionCallingConfig: Schema.optional(Schema.Struct({
    mode: Schema.optional(Schema.String),
    allowedFunctionNames: Schema.optional(Schema.Array(Schema.String))
  }))
})
export type ToolConfig = typeof ToolConfig.Type

/** Sampling and output settings. */
export const GenerationConfig = Schema.Struct({
  temperature: Schema.optional(Schema.Number),
  topP: Schema.optional(Schema.Number),
  topK: Schema.optional(Schema.Number),
  candidateCount: Schema.optional(Schema.Number),
  maxOutputTokens: Schema.optional(Schema.Number),
  stopSequences: Schema.optional(Schema.Array(Schema.String)),
  presencePenalty: Schema.optional(Schema.Number),
  frequencyPenalty: Schema.optional(Schema.Number),
  seed: Schema.optional(Schema.Number),
  responseMimeType: Schema.optional(Schema.String),
  responseSchema: Schema.optional(Schema.Unknown),
  responseJsonSchema: Schema.optional(Schema.Unknown),
  responseModalities: Schema.optional(Schema.Array(Schema.String)),
  thinkingConfig: Schema.optional(Schema.Struct({
    thinkingBudget: Schema.optional(Schema.Number),
    includeThoughts: Schema.optional(Schema.Boolean)
  }))
})
export type GenerationConfig = typeof GenerationConfig.Type

/** A block threshold for one harm category, e.g. `HARM_CATEGORY_HARASSMENT` / `BLOCK_NONE`. */
export const SafetySetting = Schema.Struct({
  category: Schema.String,
  threshold: Schema.String
})
export type SafetySetting = typeof SafetySetting.Type

/**
 * The body of `generateContent`. `model` is ours, not Google's: it picks the model for this call
 * (`"gemini-2.5-flash"` or `"models/gemini-2.5-flash"`) and is not sent; without it the client's
 * configured model (`GEMINI_MODEL`) is used.
 */
export const GenerateContentRequest = Schema.Struct({
  model: Schema.optional(Schema.String),
  contents: Schema.Array(Content),
  systemInstruction: Schema.optional(SystemInstruction),
  tools: Schema.optional(Schema.Array(Tool)),
  toolConfig: Schema.optional(ToolConfig),
  generationConfig: Schema.optional(GenerationConfig),
  safetySettings: Schema.optional(Schema.Array(SafetySetting)),
  cachedContent: Schema.optional(Schema.String)
})
export type GenerateContentRequest = typeof GenerateContentRequest.Type

/** The probability that content is harmful in one category. */
export const SafetyRating = Schema.Struct({
  category: Schema.optional(Schema.String),
  probability: Schema.optional(Schema.String),
  blocked: Schema.optional(Schema.Boolean)
})
export type SafetyRating = typeof SafetyRating.Type

/**
 * One answer. `finishReason` is `STOP`, `MAX_TOKENS`, `SAFETY`, `RECITATION`, `OTHER`,
 * `PROHIBITED_CONTENT`, `MALFORMED_FUNCTION_CALL`, … (an open set); a candidate stopped for
 * safety may have no `content`.
 */
export const Candidate = Schema.Struct({
  content: Schema.optional(Schema.Struct({
    role: Schema.optional(Role),
    parts: Schema.optional(Schema.Array(Part))
  })),
  finishReason: Schema.optional(Schema.String),
  finishMessage: Schema.optional(Schema.String),
  safetyRatings: Schema.optional(Schema.Array(SafetyRating)),
  index: Schema.optional(Schema.Number),
  tokenCount: Schema.optional(Schema.Number),
  avgLogprobs: Schema.optional(Schema.Number),
  citationMetadata: Schema.optional(Schema.Unknown),
  groundingMetadata: Schema.optional(Schema.Unknown),
  urlContextMetadata: Schema.optional(Schema.Unknown)
})
export type Candidate = typeof Candidate.Type

/** The `finishReason` of a turn whose function call the model failed to write: ask again. */
export const malformedFunctionCall = "MALFORMED_FUNCTION_CALL"

/** Token counts of a call. */
export const UsageMetadata = Schema.Struct({
  promptTokenCount: Schema.optional(Schema.Number),
  candidatesTokenCount: Schema.optional(Schema.Number),
  totalTokenCount: Schema.optional(Schema.Number),
  thoughtsTokenCount: Schema.optional(Schema.Number),
  cachedContentTokenCount: Schema.optional(Schema.Number),
  toolUsePromptTokenCount: Schema.optional(Schema.Number),
  promptTokensDetails: Schema.optional(Schema.Array(Schema.Unknown)),
  candidatesTokensDetails: Schema.optional(Schema.Array(Schema.Unknown))
})
export type UsageMetadata = typeof UsageMetadata.Type

/** Why the prompt itself was refused: `blockReason` is `SAFETY`, `OTHER`, `BLOCKLIST`, `PROHIBITED_CONTENT`, … */
export const PromptFeedback = Schema.Struct({
  blockReason: Schema.optional(Schema.String),
  blockReasonMessage: Schema.optional(Schema.String),
  safetyRatings: Schema.optional(Schema.Array(SafetyRating))
})
export type PromptFeedback = typeof PromptFeedback.Type

/** The answer of `generateContent`. */
export const GenerateContentResponse = Schema.Struct({
  candidates: Schema.optional(Schema.Array(Candidate)),
  usageMetadata: Schema.optional(UsageMetadata),
  promptFeedback: Schema.optional(PromptFeedback),
  modelVersion: Schema.optional(Schema.String),
  responseId: Schema.optional(Schema.String)
})
export type GenerateContentResponse = typeof GenerateContentResponse.Type
