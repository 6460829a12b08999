/**
 * The production `AgentBackend`: Claude Code driven through `@anthropic-ai/claude-agent-sdk`.
 *
 * Each call runs one `query()` (the SDK spawns the native Claude Code binary). The stream is
 * scoped: interrupting it aborts the query, which kills the process. After the `result` message
 * the process is left a moment to exit by itself so it can finish writing the session
 * transcript that `resume` needs.
 *
 * Failures: a turn that ended on an API error (`is_error` with `api_error_status`, or an
 * assistant `error` such as `rate_limit`) fails the stream with the taxonomy's error for that
 * status (429 → `RateLimited`, 5xx/529 → `ServiceUnavailable`, 401/403 → `Unauthorized`, 400 →
 * `InvalidRequest`, a refused connection → `NetworkError`). A `RateLimited` / `ServiceUnavailable`
 * carries the turn's hint of when to come back as `retryAfter`: a rejected `rate_limit_event`'s
 * `resetsAt`, else Claude Code's delay before its last API retry (`api_retry`'s `retry_delay_ms`,
 * the server's `retry-after` when it sent one). Claude Code passes on no `retry-after` of the
 * answer that ended the turn, so a query without retries (the greeting) has a hint only from a
 * `rate_limit_event` (claude.ai plans). An agent failure (`error_max_turns`,
 * `error_during_execution`) is a `Result` with `isError: true`. A process failure (a thrown
 * error) is mapped by its message: rate limit / overloaded / connection problems are retryable,
 * anything else (a bad option, a missing binary, a crash at start-up) is not. Messages never
 * carry the API key.
 *
 * Configuration (through `Config`): `CLAUDE_AGENT_MODEL` (default `claude-sonnet-5-5`;
 * `claude-sonnet-4-5` reached its end of life on 2026-11-30),
 * `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` (redacted), `CLAUDE_AGENT_PERMISSION_MODE` (default
 * `acceptEdits`: unattended runs may edit files in their directory; anything else that would need
 * an approval is denied instead of waiting for one; `bypassPermissions` is refused by Claude
 * Code when it runs as root), `CLAUDE_AGENT_ALLOWED_TOOLS` (comma
 * separated, pre-approved tools such as `Bash`), `CLAUDE_AGENT_MAX_TURNS`,
 * `CLAUDE_AGENT_MAX_RETRIES` (Claude Code's own API retries within a command; default 2 — the
 * greeting always uses 0, since big3 retries it with policy `anthropic`), and
 * `CLAUDE_CODE_EXECUTABLE` (another Claude Code binary).
 *
 * @internal
 */
import type * as Sdk from "@anthropic-ai/claude-agent-sdk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import type { Big3Error } from "../Errors.js"
import { InvalidRequest, ServiceUnavailable } from "../Errors.js"
import { pathSetting } from "../internal/pathSetting.js"
import { wholeNumberSetting } from "../internal/numberSetting.js"
import { httpUrl, optionalUrlSetting } from "../internal/urlSetting.js"
import { Observability } from "../Observability.js"
import type { RunInput, Service, StartSessionInput } from "./Backend.js"
import { AgentBackend } from "./Backend.js"
import type { AgentMessage } from "./Domain.js"
import {
  clip,
  emptyTurnNotes,
  forwardedHooks,
  fromResult,
  fromSdkError,
  hookPayload,
  noteMessage,
  scrub,
  toAgentMessages,
  toResult
} from "./SdkMessages.js"
import { messageOf } from "../internal/messageOf.js"

export { fromSdkError } from "./SdkMessages.js"

const permissionModes = ["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"] as const

/** Settings of the adapter. */
export interface ClaudeAgentSdkOptions {
  readonly model: string
  readonly baseUrl?: string | undefined
  readonly apiKey?: Redacted.Redacted<string> | undefined
  readonly permissionMode: Sdk.PermissionMode
  readonly allowedTools?: ReadonlyArray<string> | undefined
  readonly maxTurns?: number | undefined
  /** Claude Code's own API retries within a command (the greeting always uses 0). */
  readonly maxRetries: number
  /** Another Claude Code binary (`pathToClaudeCodeExecutable`). */
  readonly executable?: string | undefined
  /** Variables added to the Claude Code process's environment (which starts as `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Forward Claude Code hook events (PreToolUse, Stop, …) to `Observability.emit`. Default true. */
  readonly forwardHooks?: boolean | undefined
  /** How long a finished query may take to exit by itself before it is aborted. Default 5 s. */
  readonly exitGrace?: Duration.DurationInput | undefined
  /** Another `query` in place of the SDK's (tests feed scripted message sequences through it). */
  readonly query?: QueryFunction | undefined
}

/** What the adapter uses of a running query: its messages, and `close` to end it. */
export interface RunningQuery {
  readonly [Symbol.asyncIterator]: () => AsyncIterator<Sdk.SDKMessage, void>
  readonly close: () => void
}

/** The SDK's `query`, as far as the adapter calls it. */
export type QueryFunction = (params: { readonly prompt: string; readonly options: Sdk.Options }) => RunningQuery

/** The model of `CLAUDE_AGENT_MODEL` unset: one that is not on Anthropic's deprecation list. */
export const defaultModel = "claude-sonnet-5-5"

/** The adapter's settings from the environment. */
export const config: Config.Config<ClaudeAgentSdkOptions> = Config.all({
  model: Config.string("CLAUDE_AGENT_MODEL").pipe(Config.withDefault(defaultModel)),
  // Credentials in it are refused: Anthropic is reached with ANTHROPIC_API_KEY, and a URL is shown in errors.
  baseUrl: optionalUrlSetting("ANTHROPIC_BASE_URL", httpUrl("https://api.anthropic.com")),
  apiKey: Config.option(Config.redacted("ANTHROPIC_API_KEY")),
  permissionMode: Config.literal(...permissionModes)("CLAUDE_AGENT_PERMISSION_MODE").pipe(
    Config.withDefault("acceptEdits" as const)
  ),
  allowedTools: Config.option(Config.string("CLAUDE_AGENT_ALLOWED_TOOLS")),
  maxTurns: wholeNumberSetting("CLAUDE_AGENT_MAX_TURNS", 1, 10_000),
  maxRetries: Config.map(wholeNumberSetting("CLAUDE_AGENT_MAX_RETRIES", 0, 100), (n) => n ?? 2),
  executable: pathSetting("CLAUDE_CODE_EXECUTABLE")
}).pipe(
  Config.map((c): ClaudeAgentSdkOptions => ({
    model: c.model,
    baseUrl: c.baseUrl,
    apiKey: Option.getOrUndefined(c.apiKey),
    permissionMode: c.permissionMode,
    allowedTools: Option.match(c.allowedTools, {
      onNone: () => undefined,
      onSome: (tools) => tools.split(",").map((tool) => tool.trim()).filter((tool) => tool !== "")
    }),
    maxTurns: c.maxTurns,
    maxRetries: c.maxRetries,
    executable: Option.getOrUndefined(c.executable)
  }))
)

/** The greeting `startSession` asks for. */
export const greetingPrompt = (input: StartSessionInput): string =>
  `You are ${JSON.stringify(input.name)}, a ${input.type} agent working in ${input.cwd}. ` +
  `Reply with a one-sentence greeting that states your name, and nothing else. Do not use tools.`

// ---------------------------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------------------------


/** Builds the adapter from explicit settings. */
export const makeClaudeAgentSdk = (options: ClaudeAgentSdkOptions): Effect.Effect<Service, never, Observability> =>
  Effect.gen(function*() {
    const observability = yield* Observability
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const secret = options.apiKey === undefined ? undefined : Redacted.value(options.apiKey)
    const exitGrace = Duration.decode(options.exitGrace ?? "5 seconds")
    // Loaded on first use: importing the SDK costs ≈ 0.2 s, which commands without agents skip.
    const loadQuery = yield* Effect.cached(
      Effect.tryPromise({
        try: async (): Promise<QueryFunction> => options.query ?? (await import("@anthropic-ai/claude-agent-sdk")).query,
        catch: (cause) =>
          new InvalidRequest({
            service: "anthropic",
            message: `the Claude Agent SDK could not be loaded: ${messageOf(cause)}`
          })
      })
    )

    const hooks: Partial<Record<Sdk.HookEvent, Array<Sdk.HookCallbackMatcher>>> | undefined = options.forwardHooks === false
      ? undefined
      : Object.fromEntries(forwardedHooks.map((event) => [event, [{
        hooks: [(input: Sdk.HookInput) => {
          runFork(observability.emit({
            source_app: "big3",
            session_id: input.session_id,
            hook_event_type: input.hook_event_name,
            payload: hookPayload(input, secret)
          }))
          return Promise.resolve({ continue: true })
        }]
      }]]))

    const env = (maxRetries: number): Record<string, string | undefined> => ({
      ...process.env,
      CLAUDE_AGENT_SDK_CLIENT_APP: "big3/0.1.0",
      CLAUDE_CODE_MAX_RETRIES: String(maxRetries),
      ...(options.baseUrl === undefined ? {} : { ANTHROPIC_BASE_URL: options.baseUrl }),
      ...(secret === undefined ? {} : { ANTHROPIC_API_KEY: secret }),
      ...options.env
    })

    const baseOptions = (cwd: string, maxRetries: number): Sdk.Options => ({
      cwd,
      model: options.model,
      env: env(maxRetries),
      permissionMode: options.permissionMode,
      // Nobody answers prompts in a background run: what needs approval is denied, not awaited.
      permissionPrompts: "none",
      ...(options.permissionMode === "bypassPermissions" ? { allowDangerouslySkipPermissions: true } : {}),
      ...(options.allowedTools === undefined ? {} : { allowedTools: [...options.allowedTools] }),
      ...(options.executable === undefined ? {} : { pathToClaudeCodeExecutable: options.executable }),
      ...(hooks === undefined ? {} : { hooks })
    })

    /**
     * The SDK messages of one query, up to and including its `result`. After the result the
     * process gets `exitGrace` to exit by itself (it is still writing the session transcript
     * that `resume` reads). Interrupted or failed before a result, the query is aborted and the
     * stream waits (at most `exitGrace`) until the SDK reports that Claude Code has ended (the
     * SDK closes its input, gives it ≈ 2 s, then kills it; the process is gone milliseconds
     * after the report), so an interrupted command does not keep working in its directory.
     */
    const queryStream = (prompt: string, queryOptions: Sdk.Options): Stream.Stream<Sdk.SDKMessage, Big3Error> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const query = yield* loadQuery
        const handle = yield* Effect.acquireRelease(
          Effect.try({
            try: () => {
              const abortController = new AbortController()
              const running = query({ prompt, options: { ...queryOptions, abortController } })
              const handle: {
                readonly abortController: AbortController
                readonly running: RunningQuery
                readonly iterator: AsyncIterator<Sdk.SDKMessage, void>
                /** The `next()` in flight, if any. */
                pending: Promise<IteratorResult<Sdk.SDKMessage, void>> | undefined
                sawResult: boolean
                done: boolean
              } = {
                abortController,
                running,
                iterator: running[Symbol.asyncIterator](),
                pending: undefined,
                sawResult: false,
                done: false
              }
              return handle
            },
            catch: (cause) => fromSdkError(cause, secret)
          }),
          (handle) => {
            if (handle.done) return Effect.void
            const abort = Effect.sync(() => {
              handle.abortController.abort()
              try {
                handle.running.close()
              } catch {
                // Already closed.
              }
            })
            // Settles once the generator has ended, which is once the process has exited.
            const ended = Effect.tryPromise(async () => {
              if (handle.pending !== undefined) await handle.pending
              while (!(await handle.iterator.next()).done) {
                // Messages after the result (suggestions, notices) are not ours.
              }
            }).pipe(Effect.ignore, Effect.interruptible, Effect.timeoutOption(exitGrace))
            return handle.sawResult
              ? Effect.zipRight(ended, abort)
              : Effect.zipRight(abort, ended)
          }
        )
        const next = Effect.tryPromise({
          try: () => {
            const pending = handle.iterator.next()
            handle.pending = pending
            return pending
          },
          catch: (cause) => {
            handle.done = true
            return fromSdkError(cause, secret)
          }
        })
        return Stream.repeatEffectOption(
          Effect.flatMap(Effect.mapError(next, Option.some), (step) => {
            handle.pending = undefined
            if (step.done === true) {
              handle.done = true
              return Effect.fail(Option.none())
            }
            if (step.value.type === "result") handle.sawResult = true
            return Effect.succeed(step.value)
          })
        ).pipe(Stream.takeUntil((message) => message.type === "result"))
      }))

    const run = (input: RunInput): Stream.Stream<AgentMessage, Big3Error> =>
      Stream.suspend(() => {
        let notes = emptyTurnNotes
        let sawResult = false
        const options_: Sdk.Options = {
          ...baseOptions(input.cwd, options.maxRetries),
          resume: input.sessionId,
          ...(options.maxTurns === undefined ? {} : { maxTurns: options.maxTurns })
        }
        return queryStream(input.prompt, options_).pipe(
          Stream.mapEffect((message): Effect.Effect<ReadonlyArray<AgentMessage>, Big3Error> => {
            if (message.type !== "result") {
              notes = noteMessage(notes, message)
              return Effect.succeed(toAgentMessages(message, secret))
            }
            sawResult = true
            return Effect.flatMap(Clock.currentTimeMillis, (now) => {
              const error = fromResult(message, notes, secret, now)
              return error === undefined ? Effect.succeed([toResult(message, secret)]) : Effect.fail(error)
            })
          }),
          Stream.flattenIterables,
          Stream.concat(Stream.suspend(() =>
            sawResult
              ? Stream.empty
              : Stream.fail(new ServiceUnavailable({ service: "anthropic", message: "Claude Code ended without a result" }))
          ))
        )
      })

    const startSession = (input: StartSessionInput): Effect.Effect<{ sessionId: string; greeting: string }, Big3Error> =>
      Effect.suspend(() => {
        let sessionId: string | undefined
        let notes = emptyTurnNotes
        let result: Sdk.SDKResultMessage | undefined
        // One turn, no tools: a greeting only. Later runs resume the session with the tools.
        const options_: Sdk.Options = { ...baseOptions(input.cwd, 0), maxTurns: 1, tools: [] }
        return queryStream(greetingPrompt(input), options_).pipe(
          Stream.runForEach((message) =>
            Effect.sync(() => {
              if (message.type === "system" && message.subtype === "init") sessionId = message.session_id
              if (message.type === "result") {
                result = message
                sessionId = message.session_id
              } else {
                notes = noteMessage(notes, message)
              }
            })
          ),
          Effect.zipRight(Clock.currentTimeMillis),
          Effect.flatMap((now): Effect.Effect<{ sessionId: string; greeting: string }, Big3Error> => {
            if (result === undefined || sessionId === undefined) {
              return Effect.fail(new ServiceUnavailable({ service: "anthropic", message: "Claude Code ended without a result" }))
            }
            const error = fromResult(result, notes, secret, now)
            if (error !== undefined) return Effect.fail(error)
            if (result.is_error || result.subtype !== "success") {
              const detail = result.subtype === "success" ? clip(result.result) : result.errors.join("; ")
              const message = `the greeting of agent ${input.name} failed (${result.subtype}): ${scrub(detail, secret)}`
              // A turn or budget limit is the same on every attempt; an execution error may not be.
              return Effect.fail(
                result.subtype === "success" || result.subtype === "error_during_execution"
                  ? new ServiceUnavailable({ service: "anthropic", message })
                  : new InvalidRequest({ service: "anthropic", message })
              )
            }
            return Effect.succeed({ sessionId, greeting: scrub(result.result, secret).trim() })
          })
        )
      })

    return AgentBackend.of({ startSession, run })
  })

/** The production backend, configured from the environment; hooks go to `Observability`. */
export const claudeAgentSdk: Layer.Layer<AgentBackend, ConfigError.ConfigError, Observability> = Layer.effect(
  AgentBackend,
  Effect.flatMap(config, makeClaudeAgentSdk)
)

/** The same, another name in the `layer…` style. */
export const layerClaudeAgentSdk = claudeAgentSdk

/** The production backend with some settings given explicitly (the rest from the environment). */
export const claudeAgentSdkWith = (
  overrides: Partial<ClaudeAgentSdkOptions>
): Layer.Layer<AgentBackend, ConfigError.ConfigError, Observability> =>
  Layer.effect(AgentBackend, Effect.flatMap(config, (base) => makeClaudeAgentSdk({ ...base, ...overrides })))
