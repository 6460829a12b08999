/**
 * Bundles the `big3` bin (part of `npm run build`): src/cli/main.ts and everything it loads into
 * dist/bin/, split at each dynamic import, so that a command loads its own chunk when it runs and
 * Node reads a handful of files instead of hundreds. `big3 --version` loads the entry alone.
 *
 * Left outside: better-sqlite3 (a native addon), the Claude Agent SDK (it starts Claude Code
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

await esbuild.build({
  entryPoints: { big3: path.join(root, "src", "cli", "main.ts") },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  minifySyntax: true,
  minifyWhitespace: true,
  sourcemap: "linked",
  external: ["better-sqlite3", "@anthropic-ai/claude-agent-sdk", "playwright-core"],
  // Bundled CommonJS dependencies (undici) call require() for Node's own modules.
  banner: { js: "import { createRequire as __big3Require } from \"node:module\"; const require = __big3Require(import.meta.url);" },
  logLevel: "warning"
})
