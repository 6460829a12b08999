/**
 * The demo's browser scenario: the Gemini browser agent on a real headless Chromium fills and
 * submits the sandbox's sign-up form, following a computer-use plan, while the model route fails
 * transiently (503, then 429 with a RetryInfo hint) and one action opens a page that never loads.
 * Every figure comes from what happened: the requests the sandbox recorded and the agent's result.
 *
 * Where Chromium is not installed the scenario says how to install it and is left out.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Browser from "../Browser.js"
import * as BrowserAgent from "../BrowserAgent.js"
import * as Observability from "../Observability.js"
import * as Sandbox from "../Sandbox.js"
import type { ScenarioResult } from "./Demo.js"

export const name = "browser agent"

/** Runs one scenario body and records its row (the demo's own helper). */
export type Scenario = <E, R>(
  name: string,
  body: Effect.Effect<Omit<ScenarioResult, "scenario" | "wallMs">, E, R>
) => Effect.Effect<void, E, R>

export interface Options {
  readonly sandbox: Sandbox.Service
  readonly say: (line: string) => Effect.Effect<void>
  readonly scenario: Scenario
  /** The 429's RetryInfo hint. */
  readonly rateLimitHint: Duration.Duration
  /** `browser_page_load` as configured for the demo. */
  readonly pageLoad: Duration.Duration
}

const seconds = (millis: number) => `${(millis / 1000).toFixed(2)}s`

const call = (name: string, args: Record<string, unknown>) => [{ functionCall: { name, args } }]

export const play = (options: Options) =>
  Effect.gen(function*() {
    const { rateLimitHint, sandbox, say } = options
    const browser = yield* Browser.Browser
    if (!(yield* browser.installed)) {
      yield* say("")
      yield* say(`▶ ${name}: skipped, ${Browser.notInstalledMessage(browser.executable)}`)
      return
    }
    yield* options.scenario(
      name,
      Effect.gen(function*() {
        const { email, name: nameField, send } = Sandbox.formTargets
        const never = `${sandbox.url}/pages/never`
        yield* sandbox.setComputerUsePlan([
          call("navigate", { url: never }),
          call("navigate", { url: `${sandbox.url}/pages/form` }),
          call("type_text_at", { ...nameField, text: "Ada Lovelace" }),
          call("type_text_at", { ...email, text: "ada@example.com" }),
          call("click_at", send),
          [{ text: "Signed up Ada Lovelace for the newsletter." }]
        ])
        yield* sandbox.setPlan("gemini", [503, { status: 429, retryAfter: rateLimitHint }])
        const hintMs = Duration.toMillis(rateLimitHint)
        const pageLoadMs = Duration.toMillis(options.pageLoad)
        yield* say(`  Chromium, headless; the model answers 503, then 429 with a ${seconds(hintMs)} hint; one page never loads`)
        const before = (yield* sandbox.requestsFor("gemini")).length
        // Server ids only grow, and the store drops its oldest events past its bound: count by id.
        const lastIdBefore = (yield* sandbox.events).at(-1)?.id ?? 0
        const result = yield* BrowserAgent.run({
          task: "Sign up for the newsletter on the local page as Ada Lovelace, ada@example.com",
          onAction: (action) =>
            say(`  ${action.ok ? "✔" : "✘"} ${action.name}${action.error === undefined ? "" : `: ${action.error}`} (${seconds(action.ms)})`)
        })
        yield* sandbox.setComputerUsePlan(undefined)
        yield* Observability.flush
        const expectedEvents = 2 + result.actions.length
        const delivered = (yield* sandbox.events).filter((event) =>
          event.id > lastIdBefore && event.hook_event_type.startsWith("Browser")
        ).length
        const requests = (yield* sandbox.requestsFor("gemini")).slice(before)
        const times = requests.map((request) => request.time)
        // The waits of the retries: between the failed requests and the one that got through.
        const waits = times.slice(1, 3).map((time, i) => time - times[i]!)
        const cut = result.actions.find((action) => action.error?.includes("browser_page_load") === true)
        const submitted = result.finalUrl.startsWith(`${sandbox.url}/pages/submitted`)
        const ok = result.status === "completed" && submitted && cut !== undefined && delivered === expectedEvents &&
          requests[0]?.outcome === 503 && requests[1]?.outcome === 429 && (waits[1] ?? 0) >= hintMs
        yield* say(`  ${result.status} after ${result.turns} turns: ${result.text}`)
        return {
          attempts: requests.length,
          waits,
          ok,
          eventsEmitted: expectedEvents,
          eventsDelivered: delivered,
          eventsLost: expectedEvents - delivered,
          outcome: `${result.status} after ${result.turns} turns and 2 retries; the page that never loaded was cut at ${
            seconds(pageLoadMs)
          }; the form was ${submitted ? "submitted" : "not submitted"}`,
          details: {
            status: result.status,
            turns: result.turns,
            actions: result.actions.length,
            pageLoadMs,
            hintMs,
            finalUrl: result.finalUrl
          }
        }
      })
    )
  })
