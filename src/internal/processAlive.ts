import * as fs from "node:fs"

/**
 * Whether a process of this host is gone, by its pid: signal 0 reaches it or says ESRCH. EPERM
 * means it exists under another user.
 *
 * @internal
 */
export const processIsGone = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return typeof error === "object" && error !== null && "code" in error && error.code === "ESRCH"
  }
}

/** The state letter and process group of `pid` from Linux's /proc, or undefined once it is gone. */
const procStat = (pid: number): { readonly state: string; readonly group: number } | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so read after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return { state: fields[0] ?? "", group: Number(fields[2]) }
}

/**
 * The processes of process group `group` that are alive, from /proc (a zombie is dead: it only waits
 * to be reaped, which an init that does not reap never does). [] where there is no /proc.
 *
 * @internal
 */
export const liveGroupMembers = (group: number): ReadonlyArray<number> => {
  let names: Array<string>
  try {
    names = fs.readdirSync("/proc")
  } catch {
    return []
  }
  return names.filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    const stat = procStat(pid)
    return stat !== undefined && stat.state !== "Z" && stat.group === group
  })
}
