/**
 * Which program `main.ts` starts for a command line. `big3 events …` has a bundle of its own
 * (`events-main.ts`, run with V8's code cache) that leaves out the modules only some settings
 * load; with any of those settings given, the whole program runs instead.
 *
 * @internal
 */

/**
 * The settings that load a module the events bundle leaves out (`scripts/bundle.mjs` lists the
 * same four): OTLP export, the `/metrics` endpoint, the PostgreSQL store and the `HttpClient`
 * transport. Given at all, even blank, they send the command to the whole program.
 */
export const wholeProgramSettings = [
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "BIG3_METRICS_PORT",
  "BIG3_DATABASE_URL",
  "BIG3_EVENTS_TRANSPORT"
] as const

/**
 * The subcommands the events bundle runs. Any other word after `events` goes to the whole
 * program, whose usage error lists every command.
 */
export const eventsSubcommands: ReadonlyArray<string> = ["send", "stats", "flush", "dead-letters"]

/** Whether `argv` (as `process.argv`) can run on the events bundle. */
export const eventsBundleRuns = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): boolean =>
  argv[2] === "events" &&
  eventsSubcommands.includes(argv[3] ?? "") &&
  wholeProgramSettings.every((name) => env[name] === undefined) &&
  // `--metrics` serves /metrics while the command runs.
  !argv.some((arg) => arg.startsWith("--metrics"))
