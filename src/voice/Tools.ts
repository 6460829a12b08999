/**
 * The orchestrator's tools: their definitions for the model (`session.tools`), and their
 * dispatch to `Agents` and `BrowserAgent`. Every call is answered with text: a JSON result, or
 * `Errors.describe(error)` when the tool failed (bad arguments included), so the model can say
 * what went wrong and the session goes on.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Agents from "../Agents.js"
import type * as BrowserAgent from "../BrowserAgent.js"
import * as Errors from "../Errors.js"
import type { FunctionCall, FunctionTool } from "../Realtime.js"
import { withSpanWhenTraced } from "../internal/tracing.js"

/** The type `create_agent` gives an agent when the model names none (the original's coding agent). */
export const defaultAgentType = "agentic_coding"

/** How much of an operator file `check_agent_result` returns; the rest is cut with a note. */
export const maxResultChars = 8000

const objectSchema = (properties: Record<string, { readonly type: "string"; readonly description: string }>, required: ReadonlyArray<string>) => ({
  type: "object",
  properties,
  required,
  additionalProperties: false
})

/** The tool definitions, as `session.update` sends them. */
export const definitions: ReadonlyArray<FunctionTool> = [
  {
    type: "function",
    name: "list_agents",
    description: "List the Claude coding agents: name, type, when created, commands running.",
    parameters: objectSchema({}, [])
  },
  {
    type: "function",
    name: "create_agent",
    description: "Create a Claude coding agent with its own working directory. Returns its name and greeting.",
    parameters: objectSchema({
      name: { type: "string", description: "1-64 letters, digits, '-' or '_', not starting with '-'; omit to get a generated name" },
      type: { type: "string", description: `what kind of agent; default ${defaultAgentType}` }
    }, [])
  },
  {
    type: "function",
    name: "command_agent",
    description: "Give an agent a task. It runs in the background; returns the operator file to check later.",
    parameters: objectSchema({
      name: { type: "string", description: "the agent's name" },
      prompt: { type: "string", description: "what the agent should do" }
    }, ["name", "prompt"])
  },
  {
    type: "function",
    name: "check_agent_result",
    description: "Read an agent's operator file (status, progress, result): the latest, or the one named.",
    parameters: objectSchema({
      name: { type: "string", description: "the agent's name" },
      operator_file: { type: "string", description: "an operator file from command_agent; default the latest" }
    }, ["name"])
  },
  {
    type: "function",
    name: "delete_agent",
    description: "Delete an agent, its directory and its operator files; running commands are stopped.",
    parameters: objectSchema({ name: { type: "string", description: "the agent's name" } }, ["name"])
  },
  {
    type: "function",
    name: "browser_use",
    description: "Have the Gemini browser agent do a task in a web browser. Returns how it ended and what it found.",
    parameters: objectSchema({
      task: { type: "string", description: "what to do, in words" },
      url: { type: "string", description: "the page to start from" }
    }, ["task"])
  }
]

/** The names of the tools. */
export const names: ReadonlyArray<string> = definitions.map((tool) => tool.name)

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

const args = {
  list_agents: Schema.Struct({}),
  create_agent: Schema.Struct({ name: Schema.optional(Schema.String), type: Schema.optional(Schema.String) }),
  command_agent: Schema.Struct({ name: Schema.String, prompt: Schema.String }),
  check_agent_result: Schema.Struct({ name: Schema.String, operator_file: Schema.optional(Schema.String) }),
  delete_agent: Schema.Struct({ name: Schema.String }),
  browser_use: Schema.Struct({ task: Schema.String, url: Schema.optional(Schema.String) })
} as const

type ToolName = keyof typeof args

const isToolName = (name: string): name is ToolName => Object.hasOwn(args, name)

const service = "voice"

const decodeArgs = <A, I>(tool: string, schema: Schema.Schema<A, I>, text: string): Effect.Effect<A, Errors.InvalidRequest> =>
  Effect.mapError(
    Schema.decodeUnknown(Schema.parseJson(schema))(text.trim() === "" ? "{}" : text),
    (error) =>
      new Errors.InvalidRequest({
        service,
        message: `${tool} arguments ${JSON.stringify(text.slice(0, 200))} are not valid: ${
          ParseResult.ArrayFormatter.formatErrorSync(error)
            .slice(0, 3)
            .map((issue) => `${issue.path.length === 0 ? "" : `${issue.path.join(".")}: `}${issue.message}`)
            .join("; ")
        }`
      })
  )

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

/** How a tool call was answered. */
export interface ToolAnswer {
  /** The text the model gets: a JSON result, or the error described. */
  readonly output: string
  readonly ok: boolean
  /** The error's tag and message when the tool failed. */
  readonly error?: string | undefined
}

/** Every way a tool can fail (all answered to the model as text). */
export type ToolError = Agents.AgentsError | BrowserAgent.BrowserAgentError

const json = (value: unknown): string => JSON.stringify(value)

/**
 * Runs one call against the agents and the browser agent. Never fails: a failure (of the tool or
 * of its arguments) is answered with `Errors.describe(error)`.
 */
export const makeDispatch = (agents: Agents.Service, browser: BrowserAgent.Service) => {
  const run = (name: ToolName, text: string): Effect.Effect<string, ToolError> => {
    switch (name) {
      case "list_agents":
        return Effect.zipRight(
          decodeArgs(name, args.list_agents, text),
          Effect.map(agents.list, (all) =>
            json({
              agents: all.map((agent) => ({
                name: agent.name,
                type: agent.type,
                created_at: agent.createdAt.toISOString(),
                running_commands: agent.runningCommands
              }))
            }))
        )
      case "create_agent":
        return Effect.flatMap(decodeArgs(name, args.create_agent, text), (input) =>
          Effect.map(
            agents.create({ name: input.name, type: input.type ?? defaultAgentType }),
            (created) => json({ name: created.name, directory: created.directory, greeting: created.greeting })
          ))
      case "command_agent":
        return Effect.flatMap(decodeArgs(name, args.command_agent, text), (input) =>
          Effect.map(
            agents.command(input.name, input.prompt),
            ({ operatorFile }) => json({ name: input.name, operator_file: operatorFile, status: "started" })
          ))
      case "check_agent_result":
        return Effect.flatMap(decodeArgs(name, args.check_agent_result, text), (input) =>
          Effect.map(agents.result(input.name, input.operator_file), ({ content, file }) =>
            json({
              file,
              content: content.length <= maxResultChars
                ? content
                : `${content.slice(0, maxResultChars)}\n… (${content.length - maxResultChars} more characters)`
            })))
      case "delete_agent":
        return Effect.flatMap(decodeArgs(name, args.delete_agent, text), (input) =>
          Effect.as(agents.delete(input.name), json({ deleted: input.name })))
      case "browser_use":
        return Effect.flatMap(decodeArgs(name, args.browser_use, text), (input) =>
          Effect.map(browser.run({ task: input.task, url: input.url }), (result) =>
            json({
              status: result.status,
              text: result.text,
              turns: result.turns,
              actions: result.actions.length,
              final_url: result.finalUrl
            })))
    }
  }

  return (call: FunctionCall): Effect.Effect<ToolAnswer> =>
    (isToolName(call.name)
      ? run(call.name, call.arguments)
      : Effect.fail<ToolError>(
        new Errors.InvalidRequest({
          service,
          message: `there is no tool named ${JSON.stringify(call.name)}; the tools are ${names.join(", ")}`
        })
      )).pipe(
        Effect.map((output): ToolAnswer => ({ output, ok: true })),
        Effect.catchAll((error) => {
          const described = Errors.describe(error)
          return Effect.succeed<ToolAnswer>({ output: described, ok: false, error: described })
        }),
        withSpanWhenTraced("Voice.tool", { "big3.tool": call.name, "big3.call_id": call.callId })
      )
}
