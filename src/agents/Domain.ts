/**
 * The data of the agents module: agent names, the messages an agent backend streams, and the
 * errors that belong to agents alone (the shared taxonomy lives in `Errors.ts`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { nonRetryableField } from "../Errors.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const notRetryable = nonRetryableField
const common = {
  /** Always "agents". */
  service: Schema.String,
  /** What happened, in words a person can act on. */
  message: Schema.String
}

/**
 * An agent name that could leave the agents directory or is otherwise unusable. Names are 1–64
 * letters, digits, `-` or `_`: no dots, no path separators, and a new name does not start with
 * `-` (a command line would read it as an option).
 */
export class InvalidAgentName extends Schema.TaggedError<InvalidAgentName>()("InvalidAgentName", {
  ...common,
  /** The name as given (shortened when very long). */
  name: Schema.String,
  retryable: notRetryable
}) {}

/** An agent of that name already exists (or is being created right now). */
export class AgentExists extends Schema.TaggedError<AgentExists>()("AgentExists", {
  ...common,
  name: Schema.String,
  retryable: notRetryable
}) {}

/**
 * A registry row that does not decode. big3 stops rather than guess, and never rewrites the
 * row: repair or remove it by hand (`sqlite3 {BIG3_STATE_DIR}/big3.db`).
 */
export class RegistryCorrupt extends Schema.TaggedError<RegistryCorrupt>()("RegistryCorrupt", {
  ...common,
  /** The agent whose row is unreadable, when its name could be read. */
  agent: Schema.optional(Schema.String),
  retryable: notRetryable
}) {}

/** The registry database or an agent's directory could not be read or written. */
export class AgentStorageError extends Schema.TaggedError<AgentStorageError>()("AgentStorageError", {
  ...common,
  agent: Schema.optional(Schema.String),
  retryable: notRetryable
}) {}

/**
 * A path big3 will not follow or touch: an agent's directory or operator file that is (or passes
 * through) a symbolic link, a directory outside the agents root it was created under, or one the
 * registry never recorded (agents from an older big3, for `delete`). Nothing was read, written or
 * removed; the message says what was found and what to do.
 */
export class UnsafeAgentPath extends Schema.TaggedError<UnsafeAgentPath>()("UnsafeAgentPath", {
  ...common,
  agent: Schema.String,
  /** The path that was refused. */
  path: Schema.String,
  retryable: notRetryable
}) {}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/**
 * Letters, digits, `-` and `_`, 1 to 64 of them: what a stored name may be. New names are held to
 * `validateName`, which also refuses a leading `-`; an agent registered before that rule stays
 * readable and can still be deleted.
 */
export const namePattern = /^[A-Za-z0-9_-]{1,64}$/

/** An agent name: safe as a single path segment. */
export const AgentName = Schema.String.pipe(
  Schema.pattern(namePattern, {
    message: () => "an agent name is 1–64 letters, digits, '-' or '_' (no dots, no path separators)"
  }),
  Schema.brand("AgentName")
)
export type AgentName = typeof AgentName.Type

const shorten = (text: string, max = 80): string => text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`

const describeProblem = (name: string): string => {
  if (name.length === 0) return "it is empty"
  if (name.length > 64) return `it is ${name.length} characters long (at most 64)`
  if (name.includes("/") || name.includes("\\")) return "it contains a path separator"
  if (name.includes(".")) return "it contains a dot"
  if (!namePattern.test(name)) return "it contains characters other than letters, digits, '-' and '_'"
  return "it starts with '-', which a command line reads as an option"
}

/** A new name: a stored name that does not start with `-`, so `big3 agents command <name>` can take it. */
const isValidNewName = (name: string): boolean => namePattern.test(name) && !name.startsWith("-")

/** Validates a new name given by a caller (`create`, on a runner too). */
export const validateName = (name: string): Effect.Effect<AgentName, InvalidAgentName> =>
  isValidNewName(name)
    ? Effect.succeed(AgentName.make(name))
    : Effect.fail(
      new InvalidAgentName({
        service: "agents",
        name: shorten(name),
        message: `invalid agent name ${JSON.stringify(shorten(name))}: ${describeProblem(name)}; ` +
          `use 1–64 letters, digits, '-' or '_', not starting with '-'`
      })
    )

// ---------------------------------------------------------------------------------------------
// Messages streamed by a backend
// ---------------------------------------------------------------------------------------------

/** Token counts of a run, when the backend reports them. */
export const Usage = Schema.Struct({
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  cacheReadInputTokens: Schema.optional(Schema.Number),
  cacheCreationInputTokens: Schema.optional(Schema.Number)
})
export type Usage = typeof Usage.Type

/** Text the agent wrote. */
export const TextMessage = Schema.TaggedStruct("Text", { text: Schema.String })
/** The agent called a tool. */
export const ToolUseMessage = Schema.TaggedStruct("ToolUse", {
  id: Schema.String,
  name: Schema.String,
  input: Schema.Unknown
})
/** A tool answered. */
export const ToolResultMessage = Schema.TaggedStruct("ToolResult", {
  id: Schema.String,
  isError: Schema.Boolean,
  content: Schema.String
})
/** Anything else worth a line in the operator file (session started, API retry, …). */
export const ProgressMessage = Schema.TaggedStruct("Progress", { message: Schema.String })
/**
 * The end of a run: the final text, whether the agent failed (max turns, an error during
 * execution), and what it cost.
 */
export const ResultMessage = Schema.TaggedStruct("Result", {
  text: Schema.String,
  isError: Schema.Boolean,
  costUsd: Schema.optional(Schema.Number),
  usage: Schema.optional(Usage),
  /** The backend's own word for how the run ended ("success", "error_max_turns", …). */
  subtype: Schema.optional(Schema.String),
  turns: Schema.optional(Schema.Number),
  durationMs: Schema.optional(Schema.Number)
})

/** What `AgentBackend.run` streams; a run ends with a `Result`. */
export const AgentMessage = Schema.Union(TextMessage, ToolUseMessage, ToolResultMessage, ProgressMessage, ResultMessage)
export type AgentMessage = typeof AgentMessage.Type
export type TextMessage = typeof TextMessage.Type
export type ToolUseMessage = typeof ToolUseMessage.Type
export type ToolResultMessage = typeof ToolResultMessage.Type
export type ProgressMessage = typeof ProgressMessage.Type
export type ResultMessage = typeof ResultMessage.Type
