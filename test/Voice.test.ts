/**
 * The orchestrator: each tool's dispatch to Agents / BrowserAgent (stubs), failures answered as
 * text, and whole sessions against the sandbox's Realtime endpoint with the events they emit.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Agents from "../src/Agents.js"
import * as BrowserAgent from "../src/BrowserAgent.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Observability from "../src/Observability.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Voice from "../src/Voice.js"

/** Agents that know one agent, "builder", and record what they were asked. */
const agentsStub = (calls: Array<string>) =>
  Layer.mock(Agents.Agents, {
    create: (input) =>
      Effect.sync(() => calls.push(`create ${input.name ?? "-"} ${input.type}`)).pipe(
        Effect.as({ name: input.name ?? "agent-0000abcd", sessionId: "s-1", directory: "/agents/builder", greeting: "Ready." })
      ),
    command: (name, prompt) =>
      name === "builder"
        ? Effect.sync(() => (calls.push(`command ${name} ${prompt}`), { operatorFile: "/agents/builder/operator-1.md" }))
        : Effect.fail(new Errors.NotFound({ service: "agents", message: `no agent named "${name}"` })),
    result: (name, operatorFile) =>
      Effect.sync(() => (calls.push(`result ${name} ${operatorFile ?? "latest"}`), {
        file: "/agents/builder/operator-1.md",
        content: "- Status: completed\n\n## Result\nDone."
      })),
    list: Effect.succeed([{
      name: "builder",
      type: "agentic_coding",
      sessionId: "s-1",
      directory: "/agents/builder",
      createdAt: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
      greeting: "Ready.",
      runningCommands: 1,
      directoryRecorded: true
    }]),
    delete: (name) => Effect.sync(() => void calls.push(`delete ${name}`))
  })

const browserStub = Layer.succeed(
  BrowserAgent.BrowserAgent,
  BrowserAgent.BrowserAgent.of({
    run: (input) =>
      Effect.succeed({
        status: "completed",
        text: `found it for: ${input.task}`,
        turns: 3,
        actions: [{ name: "navigate", args: { url: input.url ?? "" }, ok: true, ms: 12 }],
        finalUrl: input.url ?? "about:blank"
      })
  })
)

const observabilityStub = (events: Array<Observability.EventInput>) =>
  Layer.mock(Observability.Observability, { emit: (event) => Effect.sync(() => void events.push(event)) })

/** The orchestrator over stubs, talking to `url` (nothing listens there unless a test starts one). */
const voiceLayer = (options: {
  readonly calls: Array<string>
  readonly events: Array<Observability.EventInput>
  readonly url?: string
  readonly browser?: Layer.Layer<BrowserAgent.BrowserAgent>
}) =>
  Voice.layer.pipe(
    Layer.provide(Realtime.layerWith({ url: options.url ?? "ws://127.0.0.1:9/v1/realtime", apiKey: Redacted.make("sandbox-key") })),
    Layer.provide(agentsStub(options.calls)),
    Layer.provide(options.browser ?? browserStub),
    Layer.provide(observabilityStub(options.events)),
    Layer.provide(CircuitBreaker.layer),
    Layer.provide(ReliabilityConfig.layerWith({ policies: { network: { jitter: "none", initialDelay: "10 millis" } } }))
  )

const run = (name: string, args: string, calls: Array<string> = []) =>
  Effect.flatMap(Voice.Voice, (voice) => voice.runTool({ callId: "call_1", name, arguments: args })).pipe(
    Effect.provide(voiceLayer({ calls, events: [] }))
  )

describe("Voice tools", () => {
  it.effect("offers the six tools with JSON Schema parameters", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(Voice.tools.map((tool) => tool.name), [
        "list_agents",
        "create_agent",
        "command_agent",
        "check_agent_result",
        "delete_agent",
        "browser_use"
      ])
      assert.deepStrictEqual(Voice.tools.find((tool) => tool.name === "command_agent")?.parameters["required"], ["name", "prompt"])
    }))

  it.effect("list_agents answers the registry as JSON", () =>
    Effect.gen(function*() {
      const answer = yield* run("list_agents", "{}")
      assert.deepStrictEqual(answer, {
        ok: true,
        output: `{"agents":[{"name":"builder","type":"agentic_coding","created_at":"2026-01-02T03:04:05.000Z","running_commands":1}]}`
      })
    }))

  it.effect("create_agent without a type makes the default agent type", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const answer = yield* run("create_agent", `{"name":"builder"}`, calls)
      assert.deepStrictEqual(calls, ["create builder agentic_coding"])
      assert.strictEqual(answer.output, `{"name":"builder","directory":"/agents/builder","greeting":"Ready."}`)
      yield* run("create_agent", "", calls)
      assert.deepStrictEqual(calls, ["create builder agentic_coding", "create - agentic_coding"])
    }))

  it.effect("command_agent, check_agent_result and delete_agent go to the agents", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      assert.strictEqual(
        (yield* run("command_agent", `{"name":"builder","prompt":"add a test"}`, calls)).output,
        `{"name":"builder","operator_file":"/agents/builder/operator-1.md","status":"started"}`
      )
      assert.strictEqual(
        (yield* run("check_agent_result", `{"name":"builder"}`, calls)).output,
        JSON.stringify({ file: "/agents/builder/operator-1.md", content: "- Status: completed\n\n## Result\nDone." })
      )
      assert.strictEqual((yield* run("delete_agent", `{"name":"builder"}`, calls)).output, `{"deleted":"builder"}`)
      assert.deepStrictEqual(calls, ["command builder add a test", "result builder latest", "delete builder"])
    }))

  it.effect("browser_use goes to the browser agent", () =>
    Effect.gen(function*() {
      const answer = yield* run("browser_use", `{"task":"find the docs","url":"http://127.0.0.1:1/docs"}`)
      assert.strictEqual(
        answer.output,
        `{"status":"completed","text":"found it for: find the docs","turns":3,"actions":1,"final_url":"http://127.0.0.1:1/docs"}`
      )
    }))

  it.effect("a tool that fails is answered with the error described, not a crash", () =>
    Effect.gen(function*() {
      const answer = yield* run("command_agent", `{"name":"ghost","prompt":"boo"}`)
      assert.deepStrictEqual(answer, {
        ok: false,
        output: `NotFound: no agent named "ghost"`,
        error: `NotFound: no agent named "ghost"`
      })
    }))

  it.effect("bad arguments and unknown tools are answered as InvalidRequest", () =>
    Effect.gen(function*() {
      const missing = yield* run("command_agent", `{"name":"builder"}`)
      assert.strictEqual(missing.ok, false)
      assert.strictEqual(
        missing.output,
        `InvalidRequest: command_agent arguments "{\\"name\\":\\"builder\\"}" are not valid: prompt: is missing`
      )
      const notJson = yield* run("delete_agent", "{name:")
      assert.match(notJson.output, /^InvalidRequest: delete_agent arguments "\{name:" are not valid: /)
      const unknown = yield* run("rm_rf", "{}")
      assert.strictEqual(
        unknown.output,
        `InvalidRequest: there is no tool named "rm_rf"; the tools are list_agents, create_agent, command_agent, check_agent_result, delete_agent, browser_use`
      )
    }))

  it.effect("without a browser agent, browser_use is answered with a BrowserError, not a result", () =>
    Effect.gen(function*() {
      const answer = yield* Effect.flatMap(Voice.Voice, (voice) =>
        voice.runTool({ callId: "c", name: "browser_use", arguments: `{"task":"look"}` })).pipe(
          Effect.provide(voiceLayer({ calls: [], events: [], browser: Voice.browserAgentUnavailable }))
        )
      assert.deepStrictEqual(answer, {
        ok: false,
        output: "BrowserError: the browser agent is not available in this build",
        error: "BrowserError: the browser agent is not available in this build"
      })
    }))
})

describe("Voice sessions against the sandbox", () => {
  const script: ReadonlyArray<Sandbox.RealtimeRule> = [
    { when: "create", calls: [{ name: "create_agent", arguments: { name: "builder" } }], text: "Created: {output}" },
    { when: "ghost", calls: [{ name: "command_agent", arguments: { name: "ghost", prompt: "boo" } }], text: "That failed: {output}" }
  ]

  it.scopedLive("tool calls run through the agents, events are emitted, a failing tool is told to the model", () =>
    Effect.gen(function*() {
      // The first connection drops in the middle of the second turn's call response: turn 1 takes
      // events 1-27 (session, user item, the call's response, its output, the text response),
      // turn 2's user item 28-29, its response starts at 30; the drop comes after event 34.
      const sandbox = yield* Sandbox.make({ realtimeScript: script, realtimePlan: [{ dropAfter: 34 }] })
      const calls: Array<string> = []
      const events: Array<Observability.EventInput> = []
      const printed: Array<string> = []
      const scope = yield* Scope.make()
      const session = yield* Voice.session({
        onEvent: (event) =>
          Effect.sync(() => {
            if (event._tag === "FunctionCall") printed.push(`call ${event.name} ${event.arguments}`)
            if (event._tag === "ToolAnswered") printed.push(`${event.ok ? "ok" : "failed"} ${event.name}: ${event.output}`)
          })
      }).pipe(Effect.provide(voiceLayer({ calls, events, url: sandbox.realtime.url })), Scope.extend(scope))
      const created = yield* session.say("create an agent")
      assert.strictEqual(created.text, `Created: {"name":"builder","directory":"/agents/builder","greeting":"Ready."}`)
      const failed = yield* session.say("command the ghost")
      assert.strictEqual(failed.text, `That failed: NotFound: no agent named "ghost"`)
      assert.deepStrictEqual(calls, ["create builder agentic_coding"])
      assert.deepStrictEqual(printed, [
        `call create_agent {"name":"builder"}`,
        `ok create_agent: {"name":"builder","directory":"/agents/builder","greeting":"Ready."}`,
        `call command_agent {"name":"ghost","prompt":"boo"}`,
        `failed command_agent: NotFound: no agent named "ghost"`
      ])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(events.map((event) => event.hook_event_type), [
        "VoiceSessionStarted",
        "ToolCalled",
        "ToolAnswered",
        "VoiceReconnected",
        "ToolCalled",
        "ToolAnswered",
        "VoiceSessionEnded"
      ])
      assert.isTrue(events.every((event) => event.session_id === session.id && event.source_app === "big3"))
      const answered = events.filter((event) => event.hook_event_type === "ToolAnswered").map((event) => event.payload)
      assert.deepStrictEqual(answered.map((payload) => [payload["tool"], payload["ok"], typeof payload["ms"]]), [
        ["create_agent", true, "number"],
        ["command_agent", false, "number"]
      ])
      assert.strictEqual(answered[1]?.["error"], `NotFound: no agent named "ghost"`)
      const reconnected = events.find((event) => event.hook_event_type === "VoiceReconnected")?.payload
      assert.deepStrictEqual([reconnected?.["reason"], reconnected?.["attempt"]], ["dropped", 1])
      assert.deepStrictEqual(events.at(-1)?.payload, {
        turns: 2,
        connections: 2,
        reconnects: 1,
        tool_calls: 2,
        duplicate_calls_skipped: 0,
        tools_failed: 1
      })
      assert.isFalse(JSON.stringify(events).includes("sandbox-key"))
    }))
})
