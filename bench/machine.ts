/**
 * The machine a bench run is on.
 * @module
 */
import type { Machine } from "./report.ts";

/** The CPU model from the text of `/proc/cpuinfo`, or "unknown". */
export function parseCpuModel(cpuinfo: string): string {
  return /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
}

/** Cores, CPU model, kernel and Deno version of this machine. */
export function machine(): Machine {
  let cpuinfo = "";
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch { /* not Linux */ }
  return {
    cores: navigator.hardwareConcurrency,
    cpuModel: parseCpuModel(cpuinfo),
    kernel: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
  };
}
