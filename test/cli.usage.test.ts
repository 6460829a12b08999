/**
 * What a new user meets first: `--help` that says each default, help text without terminal
 * escapes when it is not going to a terminal, and usage errors that name the flag.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as net from "node:net"
import { big3 } from "./support/cli.js"

/** The help of `args`, as lines. */
const helpLines = (args: ReadonlyArray<string>) =>
  Effect.map(big3([...args, "--help"]), ({ code, stdout }) => {
    assert.strictEqual(code, 0)
    return stdout.split("\n")
  })

describe("big3 --help", () => {
  // @effect/cli prints "This setting is optional." for `Options.withDefault`, never the value: the
  // default port of `big3 sandbox` was nowhere in its help.
  it.effect("names the default of every option that has one", () =>
    Effect.gen(function*() {
      const sandbox = yield* helpLines(["sandbox"])
      assert.include(sandbox, "  port on 127.0.0.1 (default 8787; 0 picks a free one)")
      assert.include(
        sandbox,
        "  extended: idempotent /events and /events/batch; public: exactly the public observability server (default extended)"
      )
      assert.include(yield* helpLines(["demo"]), "  makes jitter and faults repeatable (default 42)")
      const send = yield* helpLines(["events", "send"])
      assert.include(send, "  the event's source_app (default big3-cli)")
      assert.include(send, "  the event's session_id (default cli)")
      assert.include(yield* helpLines(["events", "dead-letters"]), "  how many of the most recent dead letters to show (default 20)")
    }))

  // The integer flags were `Options.text` underneath (so a bad value could name the flag), and
  // their help said "A user-defined piece of text."
  it.effect("says an integer flag takes an integer", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> = [
        [["sandbox"], ["--port integer", "--max-events integer"]],
        [["demo"], ["--seed integer"]],
        [["serve"], ["--port integer", "--runner-port integer"]],
        [["events", "dead-letters"], ["--limit integer"]],
        [["browse"], ["--max-turns integer"]]
      ]
      for (const [command, flags] of cases) {
        const help = yield* helpLines(command)
        for (const flag of flags) {
          const at = help.indexOf(flag)
          assert.deepStrictEqual(help.slice(at, at + 3), [flag, "", "  An integer."], `${command.join(" ")} ${flag}`)
        }
      }
    }))

  // @effect/cli renders help and usage errors with ANSI escapes, always: `big3 --help | less` or
  // `> file` showed "\x1b[0;1m" noise, and NO_COLOR was ignored.
  it.effect("is plain text when it does not go to a terminal, and so are usage errors", () =>
    Effect.gen(function*() {
      const help = yield* big3(["sandbox", "--help"])
      assert.strictEqual(help.code, 0)
      assert.notInclude(help.stdout, "\x1b[")
      assert.strictEqual(help.stdout.split("\n")[0], "big3")
      const usage = yield* big3(["demo", "--bogus"])
      assert.strictEqual(usage.code, 2)
      assert.strictEqual(usage.stderr.trim(), "big3 demo: unknown flag --bogus; big3 demo --help lists its flags")
    }))
})

describe("big3 usage errors", () => {
  // @effect/cli's integer options answered "'NaN' is not a integer": which flag, of several?
  it.effect("a flag given a bad value (an integer flag, a file flag) names the flag and the value, exit 2", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["demo", "--seed", "NaN"], `big3 demo: --seed must be an integer, got "NaN"`],
        [["sandbox", "--port", "1e999"], `big3 sandbox: --port must be an integer, got "1e999"`],
        [["sandbox", "--max-events", "1.5"], `big3 sandbox: --max-events must be an integer, got "1.5"`],
        [["serve", "--runner-port", "99999999999999999999"], `big3 serve: --runner-port must be an integer, got "99999999999999999999"`],
        [["browse", "a task", "--max-turns", "\u001b[31mten"], `big3 browse: --max-turns must be an integer, got "\\u001b[31mten"`],
        [["events", "dead-letters", "--limit", ""], `big3 events dead-letters: --limit must be an integer, got ""`]
      ]
      for (const [args, message] of cases) {
        const { code, stderr, stdout } = yield* big3(args)
        assert.deepStrictEqual({ code, stderr: stderr.trim(), stdout }, { code: 2, stderr: message, stdout: "" }, args.join(" "))
      }
      // A file flag names itself too (@effect/cli's check said "Path '…' must exist").
      const missing = yield* big3(["sandbox", "--faults", "/nonexistent/faults.json"])
      assert.deepStrictEqual(
        { code: missing.code, stderr: missing.stderr.trim() },
        { code: 2, stderr: "big3 sandbox: --faults /nonexistent/faults.json: no such file" }
      )
      const plan = yield* big3(["sandbox", "--computer-use-plan", "/nonexistent/plan.json"])
      assert.deepStrictEqual(
        { code: plan.code, stderr: plan.stderr.trim() },
        { code: 2, stderr: "big3 sandbox: --computer-use-plan /nonexistent/plan.json: no such file" }
      )
      // Integers still parse, negative ones included (the command's own range check answers).
      const negative = yield* big3(["sandbox", "--port", "-1"])
      assert.deepStrictEqual(
        { code: negative.code, stderr: negative.stderr },
        { code: 2, stderr: "big3 sandbox: --port must be an integer from 0 to 65535 (0 picks a free port), got -1" }
      )
    }))
})

describe("big3 flag mistakes", () => {
  // @effect/cli answered "Expected one of the following cases: extended, public" (which flag?),
  // and "Received unknown argument: '--seed'" for a flag with no value, an empty `--port=` or a
  // flag given twice: each says what is wrong and names the flag, exit 2.
  it.effect("a bad choice, a missing or empty value, a repeated or a missing flag: `big3 <command>: --flag …`, exit 2", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["sandbox", "--events-mode", "bogus"], `big3 sandbox: --events-mode must be one of extended, public, got "bogus"`],
        [["sandbox", "--events-mode=Public"], `big3 sandbox: --events-mode must be one of extended, public, got "Public"`],
        [["demo", "--seed"], "big3 demo: --seed needs a value (integer)"],
        [["demo", "--fast", "--seed"], "big3 demo: --seed needs a value (integer)"],
        [["sandbox", "--events-mode"], "big3 sandbox: --events-mode needs a value (extended | public)"],
        [["browse", "a task", "--url"], "big3 browse: --url needs a value (text)"],
        [["sandbox", "--port="], "big3 sandbox: --port needs a value (integer)"],
        [["demo", "--seed=", "--fast"], "big3 demo: --seed needs a value (integer)"],
        [["events", "dead-letters", "--limit"], "big3 events dead-letters: --limit needs a value (integer)"],
        [["sandbox", "--port", "1", "--port", "2"], "big3 sandbox: --port is given more than once"],
        [["sandbox", "--port=1", "--PORT", "1"], "big3 sandbox: --port is given more than once"],
        [["demo", "--json", "--json"], "big3 demo: --json is given more than once"],
        [["serve", "--runner-port", "1", "--port", "2", "--runner-port=3"], "big3 serve: --runner-port is given more than once"],
        [["demo", "--seed=1.5"], `big3 demo: --seed must be an integer, got "1.5"`],
        // @effect/cli said "Expected to find option: '--type'".
        [["events", "send", "--summary", "s"], "big3 events send: --type is required (text)"],
        [["agents", "create"], "big3 agents create: --type is required (text)"]
      ]
      for (const [args, message] of cases) {
        const { code, stderr, stdout } = yield* big3(args)
        assert.deepStrictEqual({ code, stderr: stderr.trim(), stdout }, { code: 2, stderr: message, stdout: "" }, args.join(" "))
      }
    }))

  // @effect/cli answered a misspelt flag with the required flag it then missed ("--type is
  // required" for `--tpye`), with "Received unknown argument" and no command, or, where the command
  // takes an argument, took the flag for the argument and blamed the next, valid flag
  // (`big3 browse --bogus --max-turns 3`: "Received unknown argument: '--max-turns'").
  it.effect("an unknown flag is named, with the flag it is closest to, exit 2", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["events", "send", "--tpye", "T", "--summary", "s"], "big3 events send: unknown flag --tpye; did you mean --type?"],
        [["sandbox", "--prot", "3"], "big3 sandbox: unknown flag --prot; did you mean --port?"],
        [["sandbox", "--events-mode=public", "--max-event=3"], "big3 sandbox: unknown flag --max-event; did you mean --max-events?"],
        [["demo", "--fast", "--bogus"], "big3 demo: unknown flag --bogus; big3 demo --help lists its flags"],
        [
          ["browse", "--bogus", "--max-turns", "3"],
          `big3 browse: unknown flag --bogus; big3 browse --help lists its flags (an argument that starts with "-" goes after "--")`
        ],
        [
          ["browse", "a task", "-x"],
          `big3 browse: unknown flag -x; big3 browse --help lists its flags (an argument that starts with "-" goes after "--")`
        ]
      ]
      for (const [args, message] of cases) {
        const { code, stderr, stdout } = yield* big3(args)
        assert.deepStrictEqual({ code, stderr: stderr.trim(), stdout }, { code: 2, stderr: message, stdout: "" }, args.join(" "))
      }
      // @effect/cli's own flags are flags of every command.
      const logLevel = yield* big3(["config", "--log-level", "error", "--json"])
      assert.deepStrictEqual({ code: logLevel.code, stderr: logLevel.stderr }, { code: 0, stderr: "" })
      // A value may start with "-", and after "--" so may the argument; so may an argument that
      // is not spelt as a flag ("-5", "-v is broken"), as @effect/cli has it.
      for (const args of [
        ["browse", "--url", "-x", "--max-turns", "0", "--", "-x"],
        ["browse", "--max-turns", "0", "-v is broken"],
        ["browse", "--max-turns", "0", "-5"]
      ]) {
        const dashed = yield* big3(args)
        assert.deepStrictEqual(
          { code: dashed.code, stderr: dashed.stderr.trim() },
          { code: 2, stderr: "big3 browse: --max-turns must be 1 or more, got 0" },
          args.join(" ")
        )
      }
    }))

  it.effect("values that look like flags, `--flag=value`, `--help` and `--` parse as @effect/cli has them", () =>
    Effect.gen(function*() {
      // A flag's value is the next argument, whatever it looks like: @effect/cli's rule.
      const seedIsFlag = yield* big3(["demo", "--seed", "--fast"])
      assert.deepStrictEqual(
        { code: seedIsFlag.code, stderr: seedIsFlag.stderr.trim() },
        { code: 2, stderr: `big3 demo: --seed must be an integer, got "--fast"` }
      )
      // `--port=-1` is one value; the command's own range check answers it.
      const negative = yield* big3(["sandbox", "--port=-1"])
      assert.deepStrictEqual(
        { code: negative.code, stderr: negative.stderr },
        { code: 2, stderr: "big3 sandbox: --port must be an integer from 0 to 65535 (0 picks a free port), got -1" }
      )
      // `--help` right after the command wins, as @effect/cli has it; later, it is a value.
      const help = yield* big3(["demo", "--help", "--seed"])
      assert.deepStrictEqual({ code: help.code, first: help.stdout.split("\n")[0], stderr: help.stderr }, { code: 0, first: "big3", stderr: "" })
      const helpAsValue = yield* big3(["demo", "--seed", "--help"])
      assert.deepStrictEqual(
        { code: helpAsValue.code, stderr: helpAsValue.stderr.trim() },
        { code: 2, stderr: `big3 demo: --seed must be an integer, got "--help"` }
      )
      // After "--" every argument is positional: the task, not a second --url.
      const forced = yield* big3(["browse", "--url", "about:blank", "--max-turns", "0", "--", "--url"])
      assert.deepStrictEqual(
        { code: forced.code, stderr: forced.stderr.trim() },
        { code: 2, stderr: "big3 browse: --max-turns must be 1 or more, got 0" }
      )
    }))
})

describe("big3 <command> … --help", () => {
  // @effect/cli shows help only for `--help` right after the command; after other flags it
  // answered "Received unknown argument: '--help'", exit 2: the habit of adding --help to a
  // line that did not work met an error.
  it.effect("a --help or -h after other flags shows the command's help, as right after the command", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> = [
        [["demo", "--fast", "--help"], ["demo", "--help"]],
        [["events", "send", "--type", "T", "-h"], ["events", "send", "--help"]],
        [["browse", "a task", "--url=about:blank", "--help", "--max-turns", "x"], ["browse", "--help"]]
      ]
      for (const [args, plain] of cases) {
        const late = yield* big3(args)
        const early = yield* big3(plain)
        assert.strictEqual(early.code, 0)
        assert.include(early.stdout, "USAGE")
        assert.deepStrictEqual(
          { code: late.code, stdout: late.stdout, stderr: late.stderr },
          { code: 0, stdout: early.stdout, stderr: "" },
          args.join(" ")
        )
      }
    }))
})

describe("big3 failures", () => {
  // Every other command prints `big3 <command>: <Tag>: …`; the sandbox's failures came out as
  // `big3: SandboxError: …`, from the catch-all.
  it.scopedLive("a taken port: `big3 sandbox: SandboxError: …` in one line, exit 1", () =>
    Effect.gen(function*() {
      const server = net.createServer()
      const port = yield* Effect.acquireRelease(
        Effect.async<number>((resume) => {
          server.listen(0, "127.0.0.1", () => {
            const address = server.address()
            resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : -1))
          })
        }),
        () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const { code, stderr } = yield* big3(["sandbox", "--port", String(port)])
      assert.strictEqual(code, 1)
      assert.strictEqual(
        stderr,
        `big3 sandbox: SandboxError: sandbox cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`
      )
    }))
})
