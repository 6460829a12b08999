/**
 * Claude agents: a registry, a working directory per agent, and operator files (markdown
 * task/result files) written by commands running in the background.
 *
 * - `Agents.Agents` is the service (`create`, `command`, `result`, `list`, `delete`), built by
 *   `Agents.make` / `Agents.layer` (scoped) from `ReliabilityConfig`, `CircuitBreaker`,
 *   `Observability`, `AgentBackend`, `FileSystem` + `Path` and `SqlClient`.
 * - `Agents.AgentBackend` is the port the model work goes through; `Agents.claudeAgentSdk` is the
 *   production adapter over `@anthropic-ai/claude-agent-sdk`, `Agents.scriptedBackend(script)`
 *   one for tests and demos.
 *
 * - `Agents.layerDurable(dispatch)` is a runner's service (`big3 serve`, see `Runner`): commands
 *   are recorded (`agent_commands`) and handed to `dispatch` (a workflow), and `Agents.CommandHost`
 *   executes them where they land, resuming a command whose earlier attempt died.
 *
 * Timeouts: `create` is bounded by `agent_creation`, operator-file preparation by
 * `operator_file_prep`, each background command (each attempt, on a runner) by `agent_execution`.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AgentStorageError } from "./agents/Domain.js"
import type { DeleteOptions, Options, Requirements, Service } from "./agents/Service.js"
import * as Host from "./agents/Host.js"
import { make, makeDurable } from "./agents/Service.js"

export {
  AgentBackend,
  delayedRun,
  makeScripted,
  scriptedBackend,
  scriptedRun,
  scriptedSession
} from "./agents/Backend.js"
export type { RunInput, Script, Service as BackendService, Session, StartSessionInput } from "./agents/Backend.js"
export {
  claudeAgentSdk,
  config as claudeAgentSdkConfig,
  claudeAgentSdkWith,
  fromSdkError,
  greetingPrompt,
  layerClaudeAgentSdk,
  makeClaudeAgentSdk
} from "./agents/ClaudeAgentSdk.js"
export type { ClaudeAgentSdkOptions } from "./agents/ClaudeAgentSdk.js"
export {
  AgentExists,
  AgentMessage,
  AgentName,
  AgentStorageError,
  InvalidAgentName,
  namePattern,
  ProgressMessage,
  RegistryCorrupt,
  ResultMessage,
  TextMessage,
  ToolResultMessage,
  ToolUseMessage,
  UnsafeAgentPath,
  Usage,
  validateName
} from "./agents/Domain.js"
export {
  fileNamePattern as operatorFileNamePattern,
  maxProgressLines,
  progressInterval as operatorFileProgressInterval
} from "./agents/OperatorFile.js"
export type { Status as OperatorFileStatus } from "./agents/OperatorFile.js"
export { createTable as registrySchema } from "./agents/Registry.js"
export { agentsDirConfig } from "./agents/Directory.js"
export { make, makeDurable } from "./agents/Service.js"
export { CommandHost } from "./agents/Host.js"
export type { Dispatch, DurableCommand, Outcome, Service as CommandHostService } from "./agents/Host.js"
export type {
  Agent,
  AgentsError,
  Created,
  DeleteOptions,
  OperatorFileContent,
  Options,
  RegistryError,
  Requirements,
  Service
} from "./agents/Service.js"

/** The agents service's tag. */
export class Agents extends Context.Tag("big3/Agents")<Agents, Service>() {}

/** The service, scoped: running commands are interrupted when the layer is released. */
export const layer: Layer.Layer<Agents, ConfigError.ConfigError | AgentStorageError, Requirements> = Layer.scoped(
  Agents,
  make()
)

/** `layer` with explicit options (an agents directory for tests). */
export const layerWith = (options: Options): Layer.Layer<Agents, ConfigError.ConfigError | AgentStorageError, Requirements> =>
  Layer.scoped(Agents, make(options))

/**
 * A runner's service: commands are recorded and handed to `dispatch` (the runner's workflow
 * engine), and `CommandHost` executes them where they land.
 */
export const layerDurable = (
  dispatch: Host.Dispatch,
  options: Options = {}
): Layer.Layer<Agents | Host.CommandHost, ConfigError.ConfigError | AgentStorageError, Requirements> =>
  Layer.scopedContext(
    Effect.map(
      makeDurable(dispatch, options),
      ({ host, service }) => Context.make(Agents, service).pipe(Context.add(Host.CommandHost, host))
    )
  )

/** Creates an agent; see `Service.create`. */
export const create = (input: Parameters<Service["create"]>[0]) => Effect.flatMap(Agents, (agents) => agents.create(input))

/** Starts a command in the background and returns its operator file; see `Service.command`. */
export const command = (name: string, prompt: string) => Effect.flatMap(Agents, (agents) => agents.command(name, prompt))

/** An operator file's content (the latest when none is named); see `Service.result`. */
export const result = (name: string, operatorFile?: string | undefined) =>
  Effect.flatMap(Agents, (agents) => agents.result(name, operatorFile))

/** Every registered agent. */
export const list = Effect.flatMap(Agents, (agents) => agents.list)

/** Deletes an agent; see `Service.delete`. (`delete` is a reserved word: also exported as `remove`.) */
export const remove = (name: string, options?: DeleteOptions | undefined) =>
  Effect.flatMap(Agents, (agents) => agents.delete(name, options))

export { remove as delete }
