/**
 * Runs a CommonJS bundle with V8's code cache, as Node 22's `module.enableCompileCache()` does
 * for every module (Node 20 has no such switch, and no cache for ES modules at all). The first
 * run compiles the bundle and, at exit, writes the bytecode V8 made of it (every function that
 * ran included); later runs hand that back to V8 instead of parsing and compiling again. For
 * `big3 events send` that takes about a quarter of the command's start-up off.
 *
 * The cache is a file per bundle, Node version and V8 flag set, under `BIG3_COMPILE_CACHE` (a
 * directory), else `$XDG_CACHE_HOME/big3`, else `~/.cache/big3`; `BIG3_DISABLE_COMPILE_CACHE=1`
 * turns it off. It is only a speed-up: a cache that cannot be read, written or trusted is left
 * alone and the bundle is compiled as usual.
 *
 * Trust: V8 checks that a cache fits its version, flags and the source's length, not its
 * contents. So the file name carries a hash of the source, each file starts with a hash of its
 * payload (checked before use), files are written whole (to a temporary name, then renamed),
 * and the directory must be the user's own and writable by nobody else.
 *
 * @internal
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as vm from "node:vm"

// SHA-1 here detects a torn or damaged file and tells builds apart; it is no defence against
// someone who can write the directory (nobody else can: see `trusted`). It is 4× faster than
// SHA-256 on a cache of 2 MB, and this runs on every start.
const digestBytes = 20

/** The cache directory the environment names, or `undefined` when the cache is off. */
export const cacheDirectory = (env: NodeJS.ProcessEnv): string | undefined => {
  if (env.BIG3_DISABLE_COMPILE_CACHE !== undefined && env.BIG3_DISABLE_COMPILE_CACHE.trim() !== "") return undefined
  const chosen = env.BIG3_COMPILE_CACHE?.trim()
  if (chosen !== undefined && chosen !== "") return path.resolve(chosen)
  const xdg = env.XDG_CACHE_HOME?.trim()
  // The XDG spec ignores a relative XDG_CACHE_HOME.
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, "big3")
  // A home directory that is not there is not made for a cache.
  const home = os.homedir()
  return home === "" || !fs.existsSync(home) ? undefined : path.join(home, ".cache", "big3")
}

/** Whether `dir` is a directory of this user's that nobody else can write to. */
const trusted = (dir: string): boolean => {
  const stat = fs.statSync(dir, { throwIfNoEntry: false })
  if (stat === undefined || !stat.isDirectory()) return false
  const uid = process.getuid?.()
  return (uid === undefined || stat.uid === uid) && (stat.mode & 0o022) === 0
}

const digest = (data: Uint8Array): Buffer => crypto.createHash("sha1").update(data).digest()

/** The cache's payload, or `undefined` when there is none or it is not whole. */
const readCache = (file: string): Buffer | undefined => {
  let bytes: Buffer
  try {
    bytes = fs.readFileSync(file)
  } catch {
    return undefined
  }
  if (bytes.length <= digestBytes) return undefined
  const payload = bytes.subarray(digestBytes)
  return digest(payload).equals(bytes.subarray(0, digestBytes)) ? payload : undefined
}

/** Writes `payload` whole, and removes the caches of other builds of the same bundle. */
const writeCache = (dir: string, file: string, stalePrefix: string, staleSuffix: string, payload: Buffer): void => {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (!trusted(dir)) return
    const temporary = `${file}.${process.pid}.tmp`
    fs.writeFileSync(temporary, Buffer.concat([digest(payload), payload]), { mode: 0o600 })
    fs.renameSync(temporary, file)
    for (const name of fs.readdirSync(dir)) {
      const other = path.join(dir, name)
      if (other !== file && name.startsWith(stalePrefix) && name.endsWith(staleSuffix)) fs.rmSync(other, { force: true })
    }
  } catch {
    // A cache that cannot be written costs the next run its compile, nothing else.
  }
}

export interface Options {
  /** Where the cache lives (`cacheDirectory`); `undefined` runs the bundle without one. */
  readonly dir: string | undefined
  /** Names the V8 flags this run was started with: a cache made under other flags is refused. */
  readonly variant: string
}

/**
 * Runs the CommonJS file `file` as Node would `require` it, with the code cache. Throws what
 * reading the file throws (so the caller can fall back) and whatever the bundle throws.
 */
export const run = (file: string, options: Options): void => {
  const bytes = fs.readFileSync(file)
  // esbuild writes ASCII (non-ASCII characters escaped), for which latin1 is the cheaper reading.
  const source = bytes.toString("latin1")
  const name = path.basename(file)
  const suffix = `-${process.version}-${process.arch}-${options.variant}.v8`
  const cacheDir = options.dir
  const cacheFile = cacheDir === undefined
    ? undefined
    : path.join(cacheDir, `${name}-${digest(bytes).toString("hex").slice(0, 16)}${suffix}`)
  const cachedData = cacheDir === undefined || cacheFile === undefined || !trusted(cacheDir) ? undefined : readCache(cacheFile)
  // The wrapper Node puts around every CommonJS module.
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) { ${source}\n})`,
    { filename: file, cachedData }
  )
  if (cacheDir !== undefined && cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) {
    // At exit, so that the functions the command ran are in the cache too.
    process.once("exit", () => writeCache(cacheDir, cacheFile, `${name}-`, suffix, script.createCachedData()))
  }
  const wrapper: unknown = script.runInThisContext()
  if (typeof wrapper !== "function") throw new TypeError(`${file} did not compile to a module wrapper`)
  const module = { exports: {} }
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file))
}
