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
