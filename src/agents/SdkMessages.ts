/**
 * How Claude Agent SDK messages and failures become big3's: `AgentMessage`s, the error taxonomy,
 * and hook inputs as event payloads.
 *
 * @internal
 */
import type * as Sdk from "@anthropic-ai/claude-agent-sdk"
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import type { Big3Error } from "../Errors.js"
import { fromHttp, InvalidRequest, NetworkError, RateLimited, ServiceUnavailable, Unauthorized, withWaitHint } from "../Errors.js"
import type { AgentMessage, Usage } from "./Domain.js"
import { ProgressMessage, ResultMessage, TextMessage, ToolResultMessage, ToolUseMessage } from "./Domain.js"
import { messageOf } from "../internal/messageOf.js"
import { scrubSecret } from "../internal/scrubSecret.js"

// ---------------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------------

const connectionProblem = /ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|socket hang up|fetch failed|connection (refused|reset|error|closed)/i

export const clip = (text: string, max = 500): string => text.length <= max ? text : `${text.slice(0, max)}…`

/** Removes a secret from a text that left Claude Code (stderr, error messages). */
export const scrub = (text: string, secret: string | undefined): string =>
  secret === undefined || secret.length < 4 ? text : scrubSecret(text, secret)

/** Maps an error thrown by the SDK (process failure, abort) into the taxonomy. */
export const fromSdkError = (error: unknown, secret?: string | undefined): Big3Error => {
  const raw = messageOf(error)
  const message = `Claude Code failed: ${clip(scrub(raw, secret))}`
  const service = "anthropic"
  if (error instanceof Error && error.name === "AbortError") {
    return new ServiceUnavailable({ service, message: "Claude Code was aborted before it answered" })
  }
  if (/\bspawn\b.*\bENOENT\b|ENOENT.*\bspawn\b|executable not found|not found at/i.test(raw)) {
    return new InvalidRequest({ service, message: `${message} (is the Claude Code binary installed?)` })
  }
  if (/rate.?limit|\b429\b/i.test(raw)) return new RateLimited({ service, message })
  if (/overloaded|\b529\b|\b5\d\d\b/i.test(raw)) return new ServiceUnavailable({ service, message })
  if (/\b40[13]\b|authenticat|api key|unauthori[sz]ed|forbidden/i.test(raw)) return new Unauthorized({ service, message })
  if (/\b4(00|04|13|22)\b|invalid.request|bad request/i.test(raw)) return new InvalidRequest({ service, message })
  if (connectionProblem.test(raw)) return new NetworkError({ service, message })
  // Anything else (a bad flag or setting, a refused option, a crash at start-up) is most often
  // the same on every attempt: not worth retrying.
  return new InvalidRequest({ service, message })
}

/**
 * What a turn's messages said before its result that the result does not carry: the kind of
 * API error, and the upstream's latest hint of when to come back.
 */
export interface TurnNotes {
  readonly assistantError: Sdk.SDKAssistantMessageError | undefined
  /** The `request-id` of the answer that failed, which Anthropic asks clients to quote. */
  readonly requestId: string | undefined
  /**
   * Claude Code's wait before its last API retry (`api_retry`'s `retry_delay_ms`: the server's
   * `retry-after` when it sent one). Cleared by an answer, or a retry without an HTTP answer.
   */
  readonly retryDelay: Duration.Duration | undefined
  /** When a rejected rate limit resets, in Unix ms (`rate_limit_event`'s `resetsAt` is in seconds). */
  readonly rateLimitResetsAt: number | undefined
}

export const emptyTurnNotes: TurnNotes = {
  assistantError: undefined,
  requestId: undefined,
  retryDelay: undefined,
  rateLimitResetsAt: undefined
}

/** `notes` updated with one more message of the turn. */
export const noteMessage = (notes: TurnNotes, message: Sdk.SDKMessage): TurnNotes => {
  switch (message.type) {
    case "assistant":
      // An answer ends a retry episode: its waits say nothing about a later failure.
      return message.error === undefined
        ? { ...notes, retryDelay: undefined, rateLimitResetsAt: undefined }
        : { ...notes, assistantError: message.error, requestId: message.request_id }
    case "system":
      return message.subtype === "api_retry"
        ? { ...notes, retryDelay: message.error_status === null ? undefined : Duration.millis(message.retry_delay_ms) }
        : notes
    case "rate_limit_event": {
      const info = message.rate_limit_info
      return {
        ...notes,
        rateLimitResetsAt: info.status === "rejected" && typeof info.resetsAt === "number" ? info.resetsAt * 1000 : undefined
      }
    }
    default:
      return notes
  }
}

/**
 * `error` with the turn's hint of when to come back as its `retryAfter`, stated in its message:
 * a rejected rate limit's reset for `RateLimited`, else Claude Code's last retry delay.
 */
const withHint = (error: Big3Error, notes: TurnNotes, now: number): Big3Error => {
  if (error._tag !== "RateLimited" && error._tag !== "ServiceUnavailable") return error
  const hint = error._tag === "RateLimited" && notes.rateLimitResetsAt !== undefined
    ? Duration.millis(Math.max(0, notes.rateLimitResetsAt - now))
    : notes.retryDelay
  if (hint === undefined || error.retryAfter !== undefined) return error
  const fields = {
    service: error.service,
    ...withWaitHint(error.message, hint, now),
    ...(error.status === undefined ? {} : { status: error.status })
  }
  return error._tag === "RateLimited" ? new RateLimited(fields) : new ServiceUnavailable(fields)
}

/**
 * The error of a turn that ended on an API failure, or undefined for an agent-level outcome. A
 * `RateLimited` or `ServiceUnavailable` carries the turn's hint of when to come back (`notes`),
 * measured from `now` (Unix ms).
 */
export const fromResult = (
  result: Sdk.SDKResultMessage,
  notes: TurnNotes,
  secret: string | undefined,
  now: number
): Big3Error | undefined => {
  const error = apiError(result, notes, secret)
  return error === undefined ? undefined : withHint(error, notes, now)
}

const apiError = (result: Sdk.SDKResultMessage, notes: TurnNotes, secret: string | undefined): Big3Error | undefined => {
  if (!result.is_error) return undefined
  const { assistantError, requestId } = notes
  const text = scrub(result.subtype === "success" ? result.result : result.errors.join("; "), secret)
  const status = result.subtype === "success" ? result.api_error_status : undefined
  const service = "anthropic"
  if (typeof status === "number") {
    // The request-id the failed answer carried, as a header, so `fromHttp` quotes it in its one wording.
    const headers = requestId === undefined ? {} : { "request-id": scrub(requestId, secret) }
    return fromHttp({ service, status, headers, body: clip(text) })
  }
  if (result.terminal_reason !== "api_error" && assistantError === undefined) return undefined
  const message = `Claude Code could not reach the model: ${clip(text)}`
  if (connectionProblem.test(text)) return new NetworkError({ service, message })
  switch (assistantError) {
    case "rate_limit":
      return new RateLimited({ service, message })
    case "authentication_failed":
    case "oauth_org_not_allowed":
    case "account_on_hold":
    case "verification_required":
    case "cloud_credential_error":
      return new Unauthorized({ service, message })
    case "billing_error":
    case "invalid_request":
    case "model_not_found":
    case "max_output_tokens":
      return new InvalidRequest({ service, message })
    default:
      return new ServiceUnavailable({ service, message })
  }
}

const usageOf = (usage: Sdk.SDKResultMessage["usage"] | undefined): Usage | undefined => {
  if (usage === undefined || usage === null) return undefined
  return {
    inputTokens: usage.input_tokens ?? 0,
    outputTokens: usage.output_tokens ?? 0,
    ...(typeof usage.cache_read_input_tokens === "number" ? { cacheReadInputTokens: usage.cache_read_input_tokens } : {}),
    ...(typeof usage.cache_creation_input_tokens === "number"
      ? { cacheCreationInputTokens: usage.cache_creation_input_tokens }
      : {})
  }
}

export const toResult = (result: Sdk.SDKResultMessage, secret: string | undefined) => {
  const usage = usageOf(result.usage)
  return ResultMessage.make({
    text: scrub(result.subtype === "success" ? result.result : result.errors.join("\n"), secret),
    isError: result.is_error || result.subtype !== "success",
    costUsd: result.total_cost_usd,
    ...(usage === undefined ? {} : { usage }),
    subtype: result.subtype,
    turns: result.num_turns,
    durationMs: result.duration_ms
  })
}

const toolResultText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content.map((block) =>
      Predicate.hasProperty(block, "text") && typeof block.text === "string" ? block.text : `[${String(Predicate.hasProperty(block, "type") ? block.type : "block")}]`
    ).join("\n")
  }
  return ""
}

/**
 * The `AgentMessage`s of one SDK message (most SDK messages have none), with the key scrubbed:
 * they go to operator files, events and the voice model, and a tool's output may hold it (`env`).
 */
export const toAgentMessages = (message: Sdk.SDKMessage, secret?: string | undefined): ReadonlyArray<AgentMessage> => {
  switch (message.type) {
    case "assistant":
      return message.message.content.flatMap((block): Array<AgentMessage> => {
        if (block.type === "text") return block.text === "" ? [] : [TextMessage.make({ text: scrub(block.text, secret) })]
        if (block.type === "tool_use") {
          return [ToolUseMessage.make({ id: block.id, name: block.name, input: secret === undefined ? block.input : scrubJson(block.input, secret) })]
        }
        return []
      })
    case "user": {
      const content = message.message.content
      if (typeof content === "string") return []
      return content.flatMap((block): Array<AgentMessage> =>
        block.type === "tool_result"
          ? [ToolResultMessage.make({
            id: block.tool_use_id,
            isError: block.is_error === true,
            content: clip(scrub(toolResultText(block.content), secret), 2000)
          })]
          : []
      )
    }
    case "system":
      switch (message.subtype) {
        case "init":
          return [ProgressMessage.make({
            message: `session ${message.session_id} started (Claude Code ${message.claude_code_version}, model ` +
              `${message.model}, permission mode ${message.permissionMode})`
          })]
        case "api_retry":
          return [ProgressMessage.make({
            message: `API retry ${message.attempt}/${message.max_retries} in ${message.retry_delay_ms}ms after ` +
              `${message.error_status === null ? "no response" : `HTTP ${message.error_status}`} (${message.error})`
          })]
        case "permission_denied":
          return [ProgressMessage.make({ message: `permission denied for ${message.tool_name}` })]
        default:
          return []
      }
    case "tool_progress":
      return message.heartbeat === true
        ? []
        : [ProgressMessage.make({ message: `${message.tool_name} running for ${message.elapsed_time_seconds}s` })]
    default:
      return []
  }
}

// ---------------------------------------------------------------------------------------------
// Hooks → Observability
// ---------------------------------------------------------------------------------------------

export const forwardedHooks: ReadonlyArray<Sdk.HookEvent> = [
  "SessionStart",
  "SessionEnd",
  "UserPromptSubmit",
  "PreToolUse",
  "PostToolUse",
  "PostToolUseFailure",
  "Notification",
  "Stop",
  "SubagentStart",
  "SubagentStop",
  "PreCompact"
]

/**
 * A hook input as an event payload: the key scrubbed from every string (a tool's output may hold
 * it: `env`, a `.env` file read), then long strings shortened.
 */
export const hookPayload = (input: Sdk.HookInput, secret?: string | undefined): Record<string, unknown> => {
  const parsed = scrubJson(input, secret, 2000)
  return Predicate.isRecord(parsed) ? { ...parsed } : {}
}

/** A JSON value with the key scrubbed from every string, each then cut to `maxChars` (if given). */
const scrubJson = (input: unknown, secret: string | undefined, maxChars?: number): unknown => {
  const text = JSON.stringify(input, (_key, value: unknown) => {
    if (typeof value !== "string") return value
    const scrubbed = scrub(value, secret)
    return maxChars === undefined ? scrubbed : clip(scrubbed, maxChars)
  })
  return text === undefined ? undefined : JSON.parse(text)
}
