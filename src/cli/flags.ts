/**
 * A command line's flags checked against the command's own usage before @effect/cli parses it,
 * for the mistakes @effect/cli (0.77) reports without naming the flag or without saying what is
 * wrong: a bad integer ("'NaN' is not a integer"), a bad choice ("Expected one of the following
 * cases: …"), a flag with no value, `--port=` and a flag given twice (each "Received unknown
 * argument: '--port'": its matcher drops the reason), a required flag left out, and a flag the
 * command does not have (reported as the required flag then missing, or, where the command takes
 * an argument, taken for it). It reads values as @effect/cli does (the next argument, whatever it
 * looks like, or what follows "="), so a line it passes parses the same.
 *
 * @internal
 */
import * as AutoCorrect from "@effect/cli/AutoCorrect"
import * as CliConfig from "@effect/cli/CliConfig"
import * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import type * as Usage from "@effect/cli/Usage"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import { preview } from "../internal/preview.js"

/** A flag as the command's usage shows it; `accepts` is none for a boolean. */
interface Flag {
  readonly name: string
  readonly names: ReadonlyArray<string>
  readonly accepts: Option.Option<string>
  readonly required: boolean
  readonly repeatable: boolean
}

/** Where a flag sits in the usage: under an `Optional`, an `Alternation` or a `Repeated`. */
interface Place {
  readonly required: boolean
  readonly repeatable: boolean
}

/**
 * What the check says of a command line: a mistake (`big3 <command>: <message>`), or a request
 * for the command's help that @effect/cli would not honour where it stands.
 */
export type FlagCheck =
  | { readonly _tag: "Problem"; readonly command: string; readonly message: string }
  | { readonly _tag: "Help"; readonly path: ReadonlyArray<string> }

const helpFlags: ReadonlySet<string> = new Set(["--help", "-h"])

/** @effect/cli's built-in options: when one comes first, it answers (help, wizard, version). */
const builtIns = new Set(["--help", "-h", "--wizard", "--version", "--completions"])

/** The options @effect/cli gives every command, and whether each takes a value. */
const builtInTakesValue = new Map([
  ["--help", false],
  ["-h", false],
  ["--wizard", false],
  ["--version", false],
  ["--completions", true],
  ["--log-level", true]
])

/** What @effect/cli matches names with (case-insensitive by default). */
const normalize = (text: string) => CliConfig.normalizeCase(CliConfig.defaultConfig, text)

const flagsOf = (usage: Usage.Usage, place: Place = { required: true, repeatable: false }): ReadonlyArray<Flag> => {
  switch (usage._tag) {
    case "Named": {
      // Arguments ("<task>") and the command's own name are Named too, without a leading "-".
      if (!usage.names.every((name) => name.startsWith("-"))) return []
      const name = usage.names.find((name) => name.startsWith("--")) ?? usage.names[0] ?? ""
      return [{ name, names: usage.names.map(normalize), accepts: usage.acceptedValues, ...place }]
    }
    case "Optional":
      return flagsOf(usage.usage, { ...place, required: false })
    case "Repeated":
      return flagsOf(usage.usage, { required: false, repeatable: true })
    case "Alternation":
      return [usage.left, usage.right].flatMap((side) => flagsOf(side, { ...place, required: false }))
    case "Concat":
      return [...flagsOf(usage.left, place), ...flagsOf(usage.right, place)]
    case "Empty":
    case "Mixed":
      return []
  }
}

/** Whether `usage` has an argument (`<task>`) beside its flags. */
const takesArguments = (usage: Usage.Usage): boolean => {
  switch (usage._tag) {
    case "Named":
      return usage.names.some((name) => name.startsWith("<"))
    case "Optional":
    case "Repeated":
      return takesArguments(usage.usage)
    case "Alternation":
    case "Concat":
      return takesArguments(usage.left) || takesArguments(usage.right)
    case "Empty":
    case "Mixed":
      return false
  }
}

/**
 * A flag's spelling ("-x", "--max-turns"), not an argument that happens to start with "-" ("-",
 * "-5", "-v is broken"): those @effect/cli takes as the command's argument, and so do we.
 */
const looksLikeFlag = (arg: string): boolean => /^--?[a-z][a-z0-9-]*$/i.test(arg)

/** The flag `name` is closest to, as @effect/cli's own correction finds it (at most 2 edits away). */
const closest = (flags: ReadonlyArray<Flag>, name: string): Flag | undefined => {
  let best: { readonly flag: Flag; readonly distance: number } | undefined
  for (const flag of flags) {
    if (flag.name.length <= CliConfig.defaultConfig.autoCorrectLimit + 1) continue
    const distance = AutoCorrect.levensteinDistance(name, flag.name, CliConfig.defaultConfig)
    if (distance <= CliConfig.defaultConfig.autoCorrectLimit && (best === undefined || distance < best.distance)) {
      best = { flag, distance }
    }
  }
  return best?.flag
}

/** The command `args` names (`["events", "send", …]`) and the arguments after its name. */
const selectCommand = (commands: ReadonlyArray<CommandDescriptor.Command<unknown>>, args: ReadonlyArray<string>) => {
  let choices = HashMap.fromIterable(commands.flatMap((command) => [...CommandDescriptor.getNames(command)].map((name) => [name, command] as const)))
  let command: CommandDescriptor.Command<unknown> | undefined
  const path: Array<string> = []
  for (const arg of args) {
    const next = Option.getOrUndefined(HashMap.get(choices, normalize(arg)))
    // A command without subcommands lists itself.
    if (next === undefined || next === command) break
    command = next
    path.push(arg)
    choices = CommandDescriptor.getSubcommands(next)
  }
  return command === undefined ? undefined : { command, path, rest: args.slice(path.length) }
}

/** `--flag=value` as @effect/cli splits it; `value` is "" for `--flag=`, undefined without "=". */
const splitInline = (arg: string): { readonly flag: string; readonly value: string | undefined } => {
  const equals = arg.indexOf("=")
  return arg.startsWith("--") && equals > 2 ? { flag: arg.slice(0, equals), value: arg.slice(equals + 1) } : { flag: arg, value: undefined }
}

/** What `--flag value` is wrong with, if anything. */
const valueProblem = (flag: Flag, accepts: string, value: string): string | undefined => {
  if (accepts === "integer") {
    return /^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))
      ? undefined
      // JSON quoting: a value's control characters are shown, never sent to the terminal.
      : `${flag.name} must be an integer, got ${preview(value, 200)}`
  }
  // A choice's usage lists its cases, "extended | public"; @effect/cli matches them exactly.
  const choices = accepts.split(" | ")
  return choices.length < 2 || choices.includes(value)
    ? undefined
    : `${flag.name} must be one of ${choices.join(", ")}, got ${preview(value, 200)}`
}

/**
 * The first mistake in the flags of `args` (the command line after the program's name) for one of
 * `commands`, or a `--help` (`-h`) after other arguments, which @effect/cli answers only right
 * after the command; undefined when there is neither (or the line names no command, or starts
 * with a built-in option: @effect/cli answers those).
 */
export const checkFlags = (
  commands: ReadonlyArray<CommandDescriptor.Command<unknown>>,
  args: ReadonlyArray<string>
): FlagCheck | undefined => {
  const selected = selectCommand(commands, args)
  if (selected === undefined || builtIns.has(selected.rest[0] ?? "")) return undefined
  const usage = CommandDescriptor.getUsage(selected.command)
  const flags = flagsOf(usage)
  const seen = new Set<Flag>()
  const problem = (message: string): FlagCheck => ({ _tag: "Problem", command: selected.path.join(" "), message })
  const rest = selected.rest
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? ""
    // After "--" every argument is positional.
    if (arg === "--") break
    const { flag: name, value: inline } = splitInline(arg)
    const flag = flags.find((flag) => flag.names.includes(normalize(name)))
    if (flag === undefined) {
      if (helpFlags.has(normalize(name))) return { _tag: "Help", path: selected.path }
      const takesValue = builtInTakesValue.get(normalize(name))
      if (takesValue !== undefined) {
        if (takesValue && inline === undefined) i++
        continue
      }
      if (!looksLikeFlag(name)) continue
      const near = closest(flags, name)
      const where = `big3 ${selected.path.join(" ")} --help lists its flags${
        takesArguments(usage) ? ` (an argument that starts with "-" goes after "--")` : ""
      }`
      return problem(`unknown flag ${name}; ${near === undefined ? where : `did you mean ${near.name}?`}`)
    }
    if (seen.has(flag) && !flag.repeatable) return problem(`${flag.name} is given more than once`)
    seen.add(flag)
    const accepts = Option.getOrElse(flag.accepts, () => "true | false")
    if (Option.isNone(flag.accepts) && inline !== "") continue
    const value = inline ?? rest[++i]
    if (value === undefined || inline === "") return problem(`${flag.name} needs a value (${accepts})`)
    const wrong = valueProblem(flag, accepts, value)
    if (wrong !== undefined) return problem(wrong)
  }
  // @effect/cli says "Expected to find option: '--type'".
  const missing = flags.find((flag) => flag.required && !seen.has(flag))
  return missing === undefined ? undefined : problem(`${missing.name} is required (${Option.getOrElse(missing.accepts, () => "true | false")})`)
}
