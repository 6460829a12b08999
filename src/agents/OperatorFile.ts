/**
 * Operator files: one markdown file per command, in the agent's directory, holding the task,
 * its status, the progress so far and the result. Each write replaces the whole file atomically
 * (temp file + rename), so a reader never sees half a file. While the command runs, progress is
 * rewritten at most once per `progressInterval` (1 s); the final status is always written.
 *
 * ```markdown
 * # Operator file: operator-20251129T212801123Z-000001.md
 *
 * - Agent: builder
 * - Session: 7b0c…
 * - Status: completed            (running | completed | failed | timed out | interrupted)
 * - Created: 2025-11-29T21:28:01.123Z
 * - Updated: 2025-11-29T21:28:09.004Z
 *
 * ## Task
 *
 * <the prompt, verbatim>
 *
 * ## Progress
 *
 * - 2025-11-29T21:28:02.000Z Text: …
 *
 * ## Result
 *
 * <the agent's final text, or why there is none>
 * ```
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { AgentMessage, ResultMessage } from "./Domain.js"
import { AgentStorageError } from "./Domain.js"

/** The status line of an operator file. */
export type Status = "running" | "completed" | "failed" | "timed out" | "interrupted"

/** Names `command` gives operator files. */
export const fileNamePattern = /^operator-[A-Za-z0-9_-]+\.md$/

/** `operator-<UTC timestamp to the ms>-<sequence>.md`: sorting the names sorts by creation. */
export const fileName = (millis: number, sequence: number): string =>
  `operator-${new Date(millis).toISOString().replace(/[-:.]/g, "")}-${String(sequence).padStart(6, "0")}.md`

/** The whole content of an operator file, re-rendered on every write. */
export interface Document {
  readonly file: string
  readonly agent: string
  readonly sessionId: string
  readonly task: string
  readonly createdAt: number
  status: Status
  updatedAt: number
  progress: Array<string>
  /** Progress lines dropped from the front to keep the file bounded. */
  omitted: number
  result: string | undefined
}

/**
 * The least time between two progress rewrites of a running command's file: the first message
 * is written at once, later ones at most this often; the outcome is always written.
 */
export const progressInterval: Duration.DurationInput = "1 second"

/** The most progress lines a file keeps (the newest). */
export const maxProgressLines = 500
const maxLineLength = 600

export const makeDocument = (options: {
  readonly file: string
  readonly agent: string
  readonly sessionId: string
  readonly task: string
  readonly now: number
}): Document => ({
  file: options.file,
  agent: options.agent,
  sessionId: options.sessionId,
  task: options.task,
  createdAt: options.now,
  status: "running",
  updatedAt: options.now,
  progress: [],
  omitted: 0,
  result: undefined
})

const iso = (millis: number): string => new Date(millis).toISOString()

const oneLine = (text: string): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length <= maxLineLength ? flat : `${flat.slice(0, maxLineLength)}… (${flat.length} chars)`
}

const json = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? "undefined"
  } catch {
    return String(value)
  }
}

/** The progress line of a message. */
export const describeMessage = (message: AgentMessage): string => {
  switch (message._tag) {
    case "Text":
      return `Text: ${oneLine(message.text)}`
    case "ToolUse":
      return `ToolUse ${message.name}: ${oneLine(json(message.input))}`
    case "ToolResult":
      return `ToolResult${message.isError ? " (error)" : ""}: ${oneLine(message.content)}`
    case "Progress":
      return `Progress: ${oneLine(message.message)}`
    case "Result":
      return `Result${message.isError ? " (error)" : ""}${message.subtype === undefined ? "" : ` [${message.subtype}]`}`
  }
}

/** Appends a progress line, dropping the oldest past `maxProgressLines`. */
export const addProgress = (doc: Document, now: number, line: string): void => {
  doc.progress.push(`${iso(now)} ${line}`)
  if (doc.progress.length > maxProgressLines) {
    const drop = doc.progress.length - maxProgressLines
    doc.progress.splice(0, drop)
    doc.omitted += drop
  }
  doc.updatedAt = now
}

/** The closing lines of a run's `Result`: cost and tokens, when known. */
export const describeCost = (result: ResultMessage): string | undefined => {
  const parts: Array<string> = []
  if (result.costUsd !== undefined) parts.push(`cost $${result.costUsd.toFixed(4)}`)
  if (result.usage !== undefined) parts.push(`${result.usage.inputTokens} input / ${result.usage.outputTokens} output tokens`)
  if (result.turns !== undefined) parts.push(`${result.turns} turns`)
  if (result.durationMs !== undefined) parts.push(`${(result.durationMs / 1000).toFixed(1)}s`)
  return parts.length === 0 ? undefined : parts.join(", ")
}

/** Renders the markdown. */
export const render = (doc: Document): string => {
  const progress = doc.progress.length === 0 && doc.omitted === 0
    ? "_none yet_"
    : [
      ...(doc.omitted > 0 ? [`- … ${doc.omitted} earlier entries omitted`] : []),
      ...doc.progress.map((line) => `- ${line}`)
    ].join("\n")
  const result = doc.result ?? (doc.status === "running" ? "_pending_" : "_none_")
  return [
    `# Operator file: ${doc.file}`,
    "",
    `- Agent: ${doc.agent}`,
    `- Session: ${doc.sessionId}`,
    `- Status: ${doc.status}`,
    `- Created: ${iso(doc.createdAt)}`,
    `- Updated: ${iso(doc.updatedAt)}`,
    "",
    "## Task",
    "",
    doc.task,
    "",
    "## Progress",
    "",
    progress,
    "",
    "## Result",
    "",
    result,
    ""
  ].join("\n")
}

const ioError = (agent: string, what: string) => (error: PlatformError): AgentStorageError =>
  new AgentStorageError({ service: "agents", agent, message: `could not ${what}: ${error.message}` })

/**
 * Writes `content` to `file` atomically: a temp file beside it (a dot name, never taken for an
 * operator file), then a rename. The temp file is created exclusively (`wx`), so a link planted
 * at its name is never written through, and the rename replaces a link at `file` rather than
 * following it. An interrupted or failed write removes its temp file.
 */
export const writeAtomic = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  options: { readonly agent: string; readonly file: string; readonly content: string; readonly unique: string }
): Effect.Effect<void, AgentStorageError> => {
  const temp = path.join(path.dirname(options.file), `.${path.basename(options.file)}.${options.unique}.tmp`)
  return Effect.acquireUseRelease(
    Effect.succeed(temp),
    (temp) =>
      fs.writeFileString(temp, options.content, { flag: "wx" }).pipe(
        Effect.zipRight(fs.rename(temp, options.file)),
        Effect.mapError(ioError(options.agent, `write ${options.file}`))
      ),
    (temp, exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(fs.remove(temp))
  )
}

/** The operator files in `directory`, oldest first. */
export const listFiles = (
  fs: FileSystem.FileSystem,
  agent: string,
  directory: string
): Effect.Effect<ReadonlyArray<string>, AgentStorageError> =>
  fs.readDirectory(directory).pipe(
    Effect.map((names) => names.filter((name) => fileNamePattern.test(name)).sort()),
    Effect.mapError(ioError(agent, `list ${directory}`))
  )

/** The status line of an operator file as `render` writes it (`- Status: …`), if it has one. */
export const statusOf = (content: string): string | undefined => /^- Status: (.+)$/m.exec(content)?.[1]

/**
 * The progress an earlier attempt of a command wrote into its operator file (lines and the
 * omitted count), so a resumed command continues the same list. The task is known: the section
 * is found right after it, so a task or result that contains "## Progress" cannot confuse it.
 * Anything unexpected reads as no progress.
 */
export const parseProgress = (content: string, task: string): { readonly lines: Array<string>; readonly omitted: number } => {
  const marker = `\n## Task\n\n${task}\n\n## Progress\n\n`
  const start = content.indexOf(marker)
  if (start < 0) return { lines: [], omitted: 0 }
  const block = content.slice(start + marker.length).split("\n\n", 1)[0] ?? ""
  const lines: Array<string> = []
  let omitted = 0
  for (const line of block.split("\n")) {
    const dropped = /^- … (\d+) earlier entries omitted$/.exec(line)
    if (dropped !== null) omitted = Number(dropped[1])
    else if (line.startsWith("- ")) lines.push(line.slice(2))
  }
  return { lines, omitted }
}
