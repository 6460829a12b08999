/**
 * Google's official `@google/genai` SDK against `big3 sandbox` over 127.0.0.1: whatever the SDK
 * does against the real API, it must do here, and parse what it gets as it parses real answers.
 *
 * Facts about the real API come from its public reference (ai.google.dev/api), the SDK's own
 * source (googleapis/js-genai) and error bodies reported in public issues; each test says which.
 */
import { ApiError, type Content, Environment, GoogleGenAI, SafetyPolicy } from "@google/genai"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as BigPromise from "../src/Promise.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import { at } from "./support/json.js"

const model = "gemini-2.5-flash"

const client = (sandbox: Sandbox.Service, options: { readonly apiVersion?: string; readonly apiKey?: string } = {}) =>
  new GoogleGenAI({
    apiKey: options.apiKey ?? "sandbox-key",
    httpOptions: { baseUrl: sandbox.url, ...(options.apiVersion === undefined ? {} : { apiVersion: options.apiVersion }) }
  })

/** Runs an SDK call; a rejection is a test failure with its message. */
const call = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (error) => error })

/** The SDK's error for a call that must fail: an `ApiError`, as the SDK throws for any non-2xx answer. */
const apiError = <A>(f: () => Promise<A>) =>
  Effect.flatMap(Effect.flip(call(f)), (error) =>
    error instanceof ApiError ? Effect.succeed(error) : Effect.dieMessage(`expected an ApiError, got ${String(error)}`))

/** The SDK puts the JSON error body in `message` (js-genai `throwErrorIfNotOK`). */
const bodyOf = (error: ApiError): unknown => JSON.parse(error.message)

const weatherTool = {
  functionDeclarations: [{
    name: "get_weather",
    description: "the forecast for a city",
    parametersJsonSchema: {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer", minimum: 1 }, unit: { enum: ["C", "F"] } },
      required: ["city", "days", "unit"]
    }
  }]
}

describe("@google/genai against the sandbox", () => {
  // js-genai builds `{baseUrl}/{apiVersion}/models/{model}:generateContent`; the default version is
  // v1beta and callers may pick v1: the real API serves both.
  it.scopedLive("generateContent answers text under v1beta (the default) and v1", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      for (const apiVersion of [undefined, "v1"]) {
        const response = yield* call(() =>
          client(sandbox, apiVersion === undefined ? {} : { apiVersion }).models.generateContent({ model, contents: "hello" })
        )
        assert.strictEqual(response.text, "sandbox answer to: hello")
        assert.strictEqual(response.candidates?.[0]?.finishReason, "STOP")
        assert.strictEqual(response.modelVersion, model)
        assert.isString(response.responseId)
        // Gemini 2.5 thinks by default: usage reports thoughts apart, prompt tokens per modality.
        const usage = response.usageMetadata
        assert.isAbove(usage?.thoughtsTokenCount ?? 0, 0)
        const details: unknown = usage?.promptTokensDetails
        assert.deepStrictEqual(details, [{ modality: "TEXT", tokenCount: usage?.promptTokenCount }])
        assert.strictEqual(
          usage?.totalTokenCount,
          (usage?.promptTokenCount ?? 0) + (usage?.candidatesTokenCount ?? 0) + (usage?.thoughtsTokenCount ?? 0)
        )
      }
      const paths = (yield* sandbox.requestsFor("gemini")).map((request) => request.path)
      assert.deepStrictEqual(paths, [`/v1beta/models/${model}:generateContent`, `/v1/models/${model}:generateContent`])
    }))

  // js-genai asks for `:streamGenerateContent?alt=sse` and reads one response per `data:` event.
  it.scopedLive("generateContentStream reads server-sent events chunk by chunk", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const chunks = yield* call(async () => {
        const stream = await client(sandbox).models.generateContentStream({
          model,
          contents: "tell me about the sea and the sky"
        })
        const out = []
        for await (const chunk of stream) out.push(chunk)
        return out
      })
      assert.isAtLeast(chunks.length, 2)
      assert.strictEqual(chunks.map((chunk) => chunk.text ?? "").join(""), "sandbox answer to: tell me about the sea and the sky")
      assert.deepStrictEqual(chunks.map((chunk) => chunk.candidates?.[0]?.finishReason), [
        ...chunks.slice(1).map(() => undefined),
        "STOP"
      ])
      assert.isAbove(chunks.at(-1)?.usageMetadata?.candidatesTokenCount ?? 0, 0)
      const [recorded] = yield* sandbox.requestsFor("gemini")
      assert.strictEqual(recorded?.path, `/v1beta/models/${model}:streamGenerateContent`)
      assert.deepStrictEqual(recorded?.query, { alt: "sse" })
    }))

  it.scopedLive("countTokens answers totalTokens and promptTokensDetails", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const counted = yield* call(() => client(sandbox).models.countTokens({ model, contents: "hello there" }))
      assert.strictEqual(counted.totalTokens, 3)
    }))

  // Function calling docs: args satisfy the declared schema; with thinking models the call part
  // carries a thoughtSignature that must go back unchanged (ai.google.dev/gemini-api/docs/thought-signatures).
  it.scopedLive("a tool declared with parametersJsonSchema gets its required args and a thoughtSignature", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const response = yield* call(() =>
        client(sandbox).models.generateContent({ model, contents: "weather in Oslo?", config: { tools: [weatherTool] } })
      )
      assert.deepStrictEqual(response.functionCalls, [{ name: "get_weather", args: { city: "sandbox", days: 1, unit: "C" } }])
      assert.match(response.candidates?.[0]?.content?.parts?.[0]?.thoughtSignature ?? "", /^[A-Za-z0-9+/]+=*$/)
    }))

  // The ComputerUse tool of the API reference and the SDK's `ComputerUse` type: environment,
  // excludedPredefinedFunctions, enablePromptInjectionDetection, disabledSafetyPolicies; proto
  // JSON takes either spelling of each.
  it.scopedLive("a computerUse tool with every field the SDK knows, in either spelling, is answered", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const ai = client(sandbox)
      const camel = yield* call(() =>
        ai.models.generateContent({
          model,
          contents: "open the page",
          config: {
            tools: [{
              computerUse: {
                environment: Environment.ENVIRONMENT_DESKTOP,
                excludedPredefinedFunctions: ["drag_and_drop"],
                enablePromptInjectionDetection: true,
                disabledSafetyPolicies: [SafetyPolicy.FINANCIAL_TRANSACTIONS, SafetyPolicy.LEGAL_TERMS_AND_AGREEMENTS]
              }
            }]
          }
        })
      )
      assert.strictEqual(camel.candidates?.length, 1)
      const snake = yield* call(() =>
        ai.models.generateContent({
          model,
          contents: "open the page",
          config: {
            httpOptions: {
              extraBody: {
                tools: [{
                  computer_use: {
                    environment: "ENVIRONMENT_BROWSER",
                    excluded_predefined_functions: ["drag_and_drop"],
                    enable_prompt_injection_detection: false,
                    disabled_safety_policies: ["COMMUNICATION_TOOL"]
                  }
                }]
              }
            }
          }
        })
      )
      assert.strictEqual(snake.candidates?.length, 1)
    }))

  // Gemini 3 answers 400 INVALID_ARGUMENT when the current turn's function call comes back
  // without its signature (the message as quoted in public reports, e.g. langgenius/dify-official-plugins#2088).
  it.scopedLive("Gemini 3: a chat that keeps signatures works; dropping the signature is a 400", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const ai = client(sandbox)
      const chat = ai.chats.create({ model: "gemini-3-pro-preview", config: { tools: [weatherTool] } })
      const first = yield* call(() => chat.sendMessage({ message: "weather in Oslo?" }))
      assert.strictEqual(first.functionCalls?.[0]?.name, "get_weather")
      const second = yield* call(() =>
        chat.sendMessage({ message: [{ functionResponse: { name: "get_weather", response: { forecast: "rain" } } }] })
      )
      assert.strictEqual(second.text, "sandbox answer to: weather in Oslo?")

      const history: Array<Content> = chat.getHistory().slice(0, 3).map((content) => ({
        ...content,
        parts: (content.parts ?? []).map(({ thoughtSignature: _dropped, ...part }) => part)
      }))
      const error = yield* apiError(() =>
        ai.models.generateContent({ model: "gemini-3-pro-preview", contents: history, config: { tools: [weatherTool] } })
      )
      assert.strictEqual(error.status, 400)
      assert.deepStrictEqual(bodyOf(error), {
        error: {
          code: 400,
          message: "Function call is missing a thought_signature in functionCall parts. This is required for tools to work " +
            "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function " +
            "call `default_api:get_weather` , position 2. Please refer to " +
            "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
          status: "INVALID_ARGUMENT"
        }
      })
    }))

  // GenerationConfig.maxOutputTokens: the candidate stops with finishReason MAX_TOKENS.
  it.scopedLive("maxOutputTokens cuts the answer with MAX_TOKENS", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const response = yield* call(() =>
        client(sandbox).models.generateContent({
          model,
          contents: "a question long enough to need more than three tokens in the answer",
          config: { maxOutputTokens: 3, thinkingConfig: { thinkingBudget: 0 } }
        })
      )
      assert.strictEqual(response.candidates?.[0]?.finishReason, "MAX_TOKENS")
      // Three tokens of about four characters each.
      assert.strictEqual(response.text, "sandbox answ")
      assert.isUndefined(response.usageMetadata?.thoughtsTokenCount, "thinkingBudget 0 turns thinking off")
    }))

  describe("errors, as the SDK parses real ones", () => {
    // The real API's answer to a wrong key (reported widely; ErrorInfo reason API_KEY_INVALID).
    it.scopedLive("a wrong key is 400 INVALID_ARGUMENT with an ErrorInfo API_KEY_INVALID", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const error = yield* apiError(() =>
          client(sandbox, { apiKey: "wrong-key" }).models.generateContent({ model, contents: "hi" })
        )
        assert.strictEqual(error.status, 400)
        assert.strictEqual(at(bodyOf(error), "error", "details", 0, "reason"), "API_KEY_INVALID")
      }))

    // Proto JSON parsing: an unknown field is `Invalid JSON payload received. Unknown name …`, and
    // roles are only "user" and "model".
    it.scopedLive("an unknown field and a bad role are 400 INVALID_ARGUMENT", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const ai = client(sandbox)
        const unknown = yield* apiError(() =>
          ai.models.generateContent({ model, contents: "hi", config: { httpOptions: { extraBody: { bogusField: 1 } } } })
        )
        assert.strictEqual(unknown.status, 400)
        assert.deepStrictEqual(bodyOf(unknown), {
          error: {
            code: 400,
            message: `Invalid JSON payload received. Unknown name "bogusField": Cannot find field.`,
            status: "INVALID_ARGUMENT",
            details: [{
              "@type": "type.googleapis.com/google.rpc.BadRequest",
              fieldViolations: [{
                field: "",
                description: `Invalid JSON payload received. Unknown name "bogusField": Cannot find field.`
              }]
            }]
          }
        })
        const role = yield* apiError(() =>
          ai.models.generateContent({ model, contents: [{ role: "assistant", parts: [{ text: "hi" }] }] })
        )
        assert.strictEqual(role.status, 400)
        assert.strictEqual(at(bodyOf(role), "error", "message"), "Please use a valid role: user, model.")
      }))

    // Proto JSON parsing of the ComputerUse tool: an unknown field is "Unknown name … at
    // 'tools[0].computer_use'", an enum value outside the enum "Invalid value at '<path>'
    // (type.googleapis.com/<enum type>), \"<value>\"", each a BadRequest field violation.
    it.scopedLive("a computerUse tool with an unknown field or a value outside its enums is 400 INVALID_ARGUMENT", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const ai = client(sandbox)
        const withTool = (computerUse: object) =>
          apiError(() =>
            ai.models.generateContent({
              model,
              contents: "open the page",
              config: { httpOptions: { extraBody: { tools: [{ computerUse }] } } }
            })
          )
        const violationsOf = (error: ApiError) => at(bodyOf(error), "error", "details", 0, "fieldViolations")

        const unknownField = yield* withTool({ environment: "ENVIRONMENT_BROWSER", screenSize: [1280, 800] })
        const unknownDescription =
          `Invalid JSON payload received. Unknown name "screenSize" at 'tools[0].computer_use': Cannot find field.`
        assert.strictEqual(unknownField.status, 400)
        assert.strictEqual(at(bodyOf(unknownField), "error", "status"), "INVALID_ARGUMENT")
        assert.strictEqual(at(bodyOf(unknownField), "error", "message"), unknownDescription)
        assert.deepStrictEqual(violationsOf(unknownField), [{ field: "tools[0].computer_use", description: unknownDescription }])

        const badEnvironment = yield* withTool({ environment: "ENVIRONMENT_TABLET" })
        const environmentDescription = `Invalid value at 'tools[0].computer_use.environment' ` +
          `(type.googleapis.com/google.ai.generativelanguage.v1beta.Tool.ComputerUse.Environment), "ENVIRONMENT_TABLET"`
        assert.strictEqual(badEnvironment.status, 400)
        assert.strictEqual(at(bodyOf(badEnvironment), "error", "message"), environmentDescription)
        assert.deepStrictEqual(violationsOf(badEnvironment), [
          { field: "tools[0].computer_use.environment", description: environmentDescription }
        ])

        const badPolicy = yield* withTool({ environment: "ENVIRONMENT_BROWSER", disabledSafetyPolicies: ["EVERYTHING"] })
        assert.strictEqual(badPolicy.status, 400)
        assert.strictEqual(at(violationsOf(badPolicy), 0, "field"), "tools[0].computer_use.disabled_safety_policies[0]")
        assert.deepStrictEqual((yield* sandbox.requestsFor("gemini")).map((r) => r.outcome), [400, 400, 400])
      }))

    // A nested unknown field names the message it is in by its proto path, in snake_case
    // (public reports: `Unknown name "responseModalities" at 'generation_config'`).
    it.scopedLive("an unknown nested field is named at its snake_case path", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const error = yield* apiError(() =>
          client(sandbox).models.generateContent({
            model,
            contents: "hi",
            config: { maxOutputTokens: 64, httpOptions: { extraBody: { generationConfig: { bogusOption: 1 } } } }
          })
        )
        const description = `Invalid JSON payload received. Unknown name "bogusOption" at 'generation_config': Cannot find field.`
        assert.strictEqual(error.status, 400)
        assert.deepStrictEqual(bodyOf(error), {
          error: {
            code: 400,
            message: description,
            status: "INVALID_ARGUMENT",
            details: [{
              "@type": "type.googleapis.com/google.rpc.BadRequest",
              fieldViolations: [{ field: "generation_config", description }]
            }]
          }
        })
      }))

    it.scopedLive("a model method the API does not serve here is 404 NOT_FOUND", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const error = yield* apiError(() => client(sandbox).models.embedContent({ model, contents: "hi" }))
        assert.strictEqual(error.status, 404)
        assert.strictEqual(at(bodyOf(error), "error", "status"), "NOT_FOUND")
      }))

    it.scopedLive("429 and 503 reach the SDK with Google's status and details", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { gemini: [{ status: 429, retryAfter: "12.5 seconds" }, 503] } })
        const ai = client(sandbox)
        const limited = yield* apiError(() => ai.models.generateContent({ model, contents: "hi" }))
        assert.strictEqual(limited.status, 429)
        assert.strictEqual(at(bodyOf(limited), "error", "status"), "RESOURCE_EXHAUSTED")
        assert.deepStrictEqual(at(bodyOf(limited), "error", "details", 2), {
          "@type": "type.googleapis.com/google.rpc.RetryInfo",
          retryDelay: "12.5s"
        })
        const unavailable = yield* apiError(() => ai.models.generateContent({ model, contents: "hi" }))
        assert.strictEqual(unavailable.status, 503)
        assert.strictEqual(at(bodyOf(unavailable), "error", "status"), "UNAVAILABLE")
      }))

    // js-genai checks every SSE chunk for an `error` object and throws an ApiError with its code.
    it.scopedLive("an error inside the stream ends the SDK's iteration with an ApiError", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { gemini: [{ midStream: "error", after: 1 }] } })
        const seen: Array<string> = []
        const error = yield* apiError(async () => {
          const stream = await client(sandbox).models.generateContentStream({ model, contents: "tell me a long story" })
          for await (const chunk of stream) seen.push(chunk.text ?? "")
        })
        assert.strictEqual(error.status, 503)
        assert.deepStrictEqual(seen, ["sandbox answer to: "])
      }))
  })

  // The SDK does not read RetryInfo; big3's Promise API around it does, from the ApiError's message.
  it.scopedLive("big3's Promise API around the SDK waits the sandbox's RetryInfo, then gets the answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ plans: { gemini: [{ status: 429, retryAfter: "150 millis" }] } })
      const ai = new GoogleGenAI({ apiKey: "sandbox-key", httpOptions: { baseUrl: sandbox.url, retryOptions: { attempts: 1 } } })
      const config = yield* ReliabilityConfig.make({ policies: { gemini: { initialDelay: "10 millis", jitter: "none" } } })
      const events: Array<string> = []
      const response = yield* call(() =>
        BigPromise.make({ config }).protect(() => ai.models.generateContent({ model, contents: "hi" }), {
          operation: "gemini_api",
          policy: "gemini",
          service: "gemini",
          onRetry: (event) => events.push(event.message)
        })
      )
      assert.strictEqual(response.text, "sandbox answer to: hi")
      assert.deepStrictEqual(events, [
        "gemini_api attempt 1/3 failed: RateLimited: gemini answered HTTP 429; it asks to wait 150ms; retrying in 150ms"
      ])
      assert.deepStrictEqual((yield* sandbox.requestsFor("gemini")).map((request) => request.outcome), [429, 200])
    }))

  // js-genai retries (when `retryOptions` is set) on 408/429/5xx with its own exponential backoff;
  // it does not read RetryInfo, so only the attempts are asserted here.
  it.scopedLive("the SDK's own retries get through a 503 and a 429 to the answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ plans: { gemini: [503, { status: 429, retryAfter: "10 millis" }] } })
      const ai = new GoogleGenAI({
        apiKey: "sandbox-key",
        httpOptions: { baseUrl: sandbox.url, retryOptions: { attempts: 3, initialDelay: 0.01, maxDelay: 0.05 } }
      })
      const response = yield* call(() => ai.models.generateContent({ model, contents: "hi" }))
      assert.strictEqual(response.text, "sandbox answer to: hi")
      assert.deepStrictEqual((yield* sandbox.requestsFor("gemini")).map((request) => request.outcome), [503, 429, 200])
    }))
})
