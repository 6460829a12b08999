/**
 * The Anthropic emulator's rate limits, as the API reports them in `anthropic-ratelimit-*`
 * headers on every Messages answer (docs.claude.com, "Rate limits": requests, input, output and
 * total tokens per minute, each with its limit, what remains and an RFC 3339 reset time).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * The organisation's rate limits as the `anthropic-ratelimit-*` headers report them: a request
 * and token count per minute window (clock time of arrival), reset at the window's end. A 429
 * reports nothing left until its retry hint has passed.
 */
export class RateLimits {
  readonly requestsLimit = 4000
  readonly inputTokensLimit = 2_000_000
  readonly outputTokensLimit = 400_000
  private windowStart = Number.NEGATIVE_INFINITY
  private requests = 0
  private inputTokens = 0
  private outputTokens = 0

  private roll(now: number): void {
    const start = now - (now % 60_000)
    if (start !== this.windowStart) {
      this.windowStart = start
      this.requests = 0
      this.inputTokens = 0
      this.outputTokens = 0
    }
  }

  /** Counts a served request and returns the headers of its answer. */
  served(now: number, input: number, output: number): Record<string, string> {
    this.roll(now)
    this.requests++
    this.inputTokens += input
    this.outputTokens += output
    return this.headers(now, undefined)
  }

  /** The headers of an answer at `now`; `exhaustedFor` marks every limit spent for that long. */
  headers(now: number, exhaustedFor: Option.Option<Duration.Duration> | undefined): Record<string, string> {
    this.roll(now)
    const windowReset = new Date(this.windowStart + 60_000).toISOString().replace(/\.\d{3}Z$/, "Z")
    const spent = exhaustedFor !== undefined
    const reset = spent
      ? new Date(now + Option.match(exhaustedFor, { onNone: () => 60_000, onSome: Duration.toMillis })).toISOString()
        .replace(/\.\d{3}Z$/, "Z")
      : windowReset
    const remaining = (limit: number, used: number) => String(spent ? 0 : Math.max(0, limit - used))
    const tokensLimit = this.inputTokensLimit + this.outputTokensLimit
    return {
      "anthropic-ratelimit-requests-limit": String(this.requestsLimit),
      "anthropic-ratelimit-requests-remaining": remaining(this.requestsLimit, this.requests),
      "anthropic-ratelimit-requests-reset": reset,
      "anthropic-ratelimit-input-tokens-limit": String(this.inputTokensLimit),
      "anthropic-ratelimit-input-tokens-remaining": remaining(this.inputTokensLimit, this.inputTokens),
      "anthropic-ratelimit-input-tokens-reset": reset,
      "anthropic-ratelimit-output-tokens-limit": String(this.outputTokensLimit),
      "anthropic-ratelimit-output-tokens-remaining": remaining(this.outputTokensLimit, this.outputTokens),
      "anthropic-ratelimit-output-tokens-reset": reset,
      "anthropic-ratelimit-tokens-limit": String(tokensLimit),
      "anthropic-ratelimit-tokens-remaining": remaining(tokensLimit, this.inputTokens + this.outputTokens),
      "anthropic-ratelimit-tokens-reset": reset
    }
  }

  clear(): void {
    this.windowStart = Number.NEGATIVE_INFINITY
  }
}
