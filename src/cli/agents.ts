/**
 * `big3 agents …`: create Claude agents, send them commands, read their operator files, list
 * and delete them. The registry and the agents' directories live under `BIG3_STATE_DIR`; the
 * agents' lifecycle events go to the observability server.
 *
 * `BIG3_AGENT_BACKEND` picks the model side: `claude` (default, the Claude Agent SDK), or for
 * demos and tests a scripted backend: `scripted` (echoes the prompt), `scripted-fail` (the agent
 * reports an error), `scripted-hang` (never finishes).
 *
 * The command definitions only; the work is in `agents-run.ts`, loaded when a command runs.
 *
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { jsonOption, loadModule, metricsOption, withMetrics } from "./shared.js"

const load = loadModule("agents", () => import("./agents-run.js"))

const agentName = Args.text({ name: "name" }).pipe(Args.withDescription("the agent's name"))

const name = Options.text("name").pipe(
  Options.optional,
  Options.withDescription("1–64 letters, digits, '-' or '_', not starting with '-' (default: agent-<8 hex digits>)")
)
const type = Options.text("type").pipe(Options.withDescription("what kind of agent (e.g. coder, reviewer)"))

const createCommand = Command.make(
  "create",
  { name, type, json: jsonOption, metrics: metricsOption },
  ({ json, metrics, name, type }) =>
    withMetrics(metrics, Effect.flatMap(load, (run) => run.create({ name: Option.getOrUndefined(name), type, json })))
).pipe(Command.withDescription("create an agent: its directory, a greeting session and a registry entry"))

const listCommand = Command.make(
  "list",
  { json: jsonOption, metrics: metricsOption },
  ({ json, metrics }) => withMetrics(metrics, Effect.flatMap(load, (run) => run.list({ json })))
).pipe(Command.withDescription("every registered agent, oldest first"))

const prompt = Args.text({ name: "prompt" }).pipe(Args.withDescription("what the agent should do"))
const wait = Options.boolean("wait").pipe(
  Options.withDescription("print the operator file when the command ends; exit 1 when it failed or timed out")
)

const commandCommand = Command.make(
  "command",
  { name: agentName, prompt, wait, metrics: metricsOption },
  ({ metrics, name, prompt, wait }) =>
    withMetrics(metrics, Effect.flatMap(load, (run) => run.command({ name, prompt, wait })))
).pipe(
  Command.withDescription(
    "start a command and print its operator file at once; a runner (big3 serve) carries it from there, else it runs in this process, which stays until it ends"
  )
)

const file = Args.text({ name: "file" }).pipe(
  Args.optional,
  Args.withDescription("an operator file name or path (default: the latest)")
)

const resultCommand = Command.make(
  "result",
  { name: agentName, file, json: jsonOption, metrics: metricsOption },
  ({ file, json, metrics, name }) =>
    withMetrics(metrics, Effect.flatMap(load, (run) => run.result({ name, file: Option.getOrUndefined(file), json })))
).pipe(Command.withDescription("print an operator file of the agent (the latest by default)"))

const keepDirectory = Options.boolean("keep-directory").pipe(
  Options.withDescription(
    "remove only the registry entry and leave the directory (needed for agents an older big3 registered without recording their directory)"
  )
)

const deleteCommand = Command.make(
  "delete",
  { name: agentName, keepDirectory, metrics: metricsOption },
  ({ keepDirectory, metrics, name }) => withMetrics(metrics, Effect.flatMap(load, (run) => run.remove(name, { keepDirectory })))
).pipe(Command.withDescription("delete an agent, its directory and its operator files"))

export const agentsCommand = Command.make("agents").pipe(
  Command.withDescription("Claude agents: create, command, result, list, delete"),
  Command.withSubcommands([createCommand, listCommand, commandCommand, resultCommand, deleteCommand])
)
