/**
 * Reads a process tree's memory and CPU time from Linux `/proc`.
 * @module
 */

/** Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux). */
export const CLK_TCK = 100;

/**
 * The resident set size in KiB from the text of `/proc/PID/status`.
 *
 * @returns The `VmRSS` figure, or 0 when absent (a zombie or kernel thread).
 */
export function parseVmRss(status: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) : 0;
}

/** Fields of `/proc/PID/stat` the bench needs. */
export interface StatFields {
  ppid: number;
  /** utime + stime, clock ticks, over every thread of the process. */
  cpuTicks: number;
}

/**
 * Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and
 * parentheses, so fields are counted after its last `)`.
 *
 * @throws {SyntaxError} When the text is not a stat line.
 */
export function parseStat(stat: string): StatFields {
  const close = stat.lastIndexOf(")");
  if (close < 0) throw new SyntaxError(`Cannot parse /proc stat: no ")" in "${stat}"`);
  // After ")": state(3) ppid(4) ... utime(14) stime(15).
  const fields = stat.slice(close + 2).split(" ");
  const ppid = Number(fields[1]);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (![ppid, utime, stime].every(Number.isFinite)) {
    throw new SyntaxError(`Cannot parse /proc stat: "${stat}"`);
  }
  return { ppid, cpuTicks: utime + stime };
}

function readOr(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; // The process ended meanwhile.
  }
}

/** `pid` and every live descendant of it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readOr(`/proc/${entry.name}/stat`);
    if (!stat) continue;
    const { ppid } = parseStat(stat);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry.name));
    children.set(ppid, list);
  }
  const tree: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const next = todo.pop()!;
    tree.push(next);
    todo.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** VmRSS summed over `pids`, KiB. */
export function rssKiB(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + parseVmRss(readOr(`/proc/${pid}/status`) ?? ""), 0);
}

/** utime + stime summed over `pids`, seconds. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readOr(`/proc/${pid}/stat`);
    if (stat) ticks += parseStat(stat).cpuTicks;
  }
  return ticks / CLK_TCK;
}

/** Open file descriptors summed over `pids` (entries of `/proc/PID/fd`). */
export function fdCount(pids: number[]): number {
  let count = 0;
  for (const pid of pids) {
    try {
      for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) count++;
    } catch {
      // The process ended meanwhile.
    }
  }
  return count;
}
