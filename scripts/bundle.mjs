/**
 * Bundles the `big3` bin (part of `npm run build`) into dist/bin/:
 *
 * - `big3.cjs`: the bin, src/cli/main.ts alone, as CommonJS (Node starts a CommonJS main module
 *   sooner than an ES one). `big3 --version` loads nothing else.
 * - `program.js`: the whole program (src/cli/program.ts) and everything it loads, split at each
 *   dynamic import, so that a command loads its own chunk when it runs and Node reads a handful
 *   of files instead of hundreds.
 * - `events.cjs`: `big3 events …` alone (src/cli/events-main.ts) in one CommonJS file, which
 *   main.ts runs with V8's code cache (src/cli/compileCache.ts; Node 20 caches no ES module).
 *   It leaves out the four modules that only some settings load (src/cli/route.ts names those
 *   settings, and sends such a command to the whole program instead): inlined, they would slow
 *   every run down although a run never loads them.
 *
 * Left outside both: better-sqlite3 (a native addon), the Claude Agent SDK (it starts Claude Code
 * from a file of its own package) and playwright-core (it reads its own package's files at run
 * time; `big3 browse` loads it from node_modules on the first launch only).
 */
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
// BIG3_BUNDLE_OUTDIR: somewhere else under the package (a test bundles into a directory of its own,
// which must sit under the package so that the externals resolve from its node_modules).
const outdir = process.env.BIG3_BUNDLE_OUTDIR ? path.resolve(process.env.BIG3_BUNDLE_OUTDIR) : path.join(root, "dist", "bin")
fs.rmSync(outdir, { recursive: true, force: true })

const shared = {
  bundle: true,
  platform: "node",
  target: "node20",
  minifySyntax: true,
  minifyWhitespace: true,
  // Non-ASCII characters escaped: src/cli/compileCache.ts reads the events bundle as latin1.
  charset: "ascii",
  sourcemap: "linked",
  external: ["better-sqlite3", "@anthropic-ai/claude-agent-sdk", "playwright-core"],
  logLevel: "warning"
}

await esbuild.build({
  ...shared,
  entryPoints: { program: path.join(root, "src", "cli", "program.ts") },
  outdir,
  splitting: true,
  format: "esm",
  // Bundled CommonJS dependencies (undici) call require() for Node's own modules.
  banner: { js: "import { createRequire as __big3Require } from \"node:module\"; const require = __big3Require(import.meta.url);" }
})

// main.ts loads the program with import(): kept as it is, the ES module built above.
const programOutside = {
  name: "program-outside",
  setup(build) {
    build.onResolve({ filter: /^\.\/program\.js$/ }, (args) => ({ path: args.path, external: true }))
  }
}

await esbuild.build({
  ...shared,
  entryPoints: { big3: path.join(root, "src", "cli", "main.ts") },
  outdir,
  outExtension: { ".js": ".cjs" },
  format: "cjs",
  // main.ts finds the events bundle beside itself.
  define: { "import.meta.url": "__big3Url" },
  banner: { js: "const __big3Url = require(\"node:url\").pathToFileURL(__filename).href;" },
  plugins: [programOutside]
})
fs.chmodSync(path.join(outdir, "big3.cjs"), 0o755)

// The modules the events bundle leaves out: OTLP export, the /metrics endpoint, the PostgreSQL
// client and the HttpClient transport's undici client.
const wholeProgramOnly = /^(\.\/telemetry\/Otlp|\.\/telemetry\/PrometheusEndpoint|@effect\/sql-pg\/PgClient|@effect\/platform-node\/NodeHttpClient)(\.js)?$/
const leaveOut = {
  name: "whole-program-only",
  setup(build) {
    build.onResolve({ filter: wholeProgramOnly }, (args) => args.kind === "dynamic-import" ? { path: args.path, external: true } : undefined)
  }
}

// undici's HTTP/2 client, which loads node:http2 and node:tls when undici loads (20 ms of an
// events command). The events transport's pool offers HTTP/1.1 only (no allowH2, no useH2c), so
// undici never calls it; were it ever called, it says why it is not there.
const withoutHttp2 = {
  name: "without-http2",
  setup(build) {
    build.onResolve({ filter: /^\.\/client-h2\.js$/ }, (args) =>
      /undici[\\/]lib[\\/]dispatcher[\\/]client\.js$/.test(args.importer) ? { path: "client-h2", namespace: "big3-without-http2" } : undefined)
    build.onLoad({ filter: /.*/, namespace: "big3-without-http2" }, () => ({
      contents: "module.exports = function connectH2() { throw new Error(\"HTTP/2 is not in big3's events bundle: its transport speaks HTTP/1.1\") }",
      loader: "js"
    }))
  }
}

await esbuild.build({
  ...shared,
  entryPoints: { events: path.join(root, "src", "cli", "events-main.ts") },
  outdir,
  outExtension: { ".js": ".cjs" },
  format: "cjs",
  // As require() calls: a module the bundle left out then fails to load with its name in the
  // message (a dynamic import() in code run through node:vm fails without it).
  supported: { "dynamic-import": false },
  // Short names: less source for Node to read and V8 to hold, about 30 ms of the command.
  minifyIdentifiers: true,
  plugins: [leaveOut, withoutHttp2]
})
