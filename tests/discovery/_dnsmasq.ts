/**
 * A real DNS server for the discovery tests: Debian's dnsmasq (`apt-get
 * install dnsmasq-base`) on 127.0.0.1 and a free port, answering only from a
 * hosts file and its command line:
 *
 * ```sh
 * dnsmasq --no-daemon --conf-file=/dev/null --port=PORT --listen-address=127.0.0.1 \
 *   --bind-interfaces --no-resolv --no-hosts --local=/test/ --addn-hosts=DIR/hosts \
 *   --log-queries --log-facility=- [--srv-host=... --host-record=... --server=...]
 * ```
 *
 * `--local=/test/` makes it answer NXDOMAIN for unknown names under `test`
 * (without it, dnsmasq with no upstream answers REFUSED). SIGHUP re-reads the
 * hosts file ({@linkcode Dnsmasq.setHosts}); SRV records come from the command
 * line, so changing them takes {@linkcode Dnsmasq.restart} with new `args`.
 * @module
 */
import type { HostPort } from "../../src/common/address.ts";
import { freePort, LOOPBACK } from "../_helpers.ts";

const _CANDIDATES = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/usr/local/sbin/dnsmasq"];

/** The dnsmasq program, or undefined when it is not installed. */
export const DNSMASQ: string | undefined = _CANDIDATES.find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/** Why the DNS tests are ignored, or undefined when they run. */
export const DNSMASQ_MISSING: string | undefined = DNSMASQ === undefined
  ? "dnsmasq is not installed (apt-get install dnsmasq-base): DNS tests ignored"
  : undefined;
if (DNSMASQ_MISSING !== undefined) console.warn(`tests/discovery: ${DNSMASQ_MISSING}`);

/** A name every server answers, to know that it is up. */
const _READY_NAME = "ready.test";

/** Options of {@linkcode startDnsmasq}. */
export interface DnsmasqOptions {
  /** The hosts file (`ADDRESS NAME...` lines). */
  hosts?: string;
  /** More dnsmasq arguments, e.g. `--srv-host=_http._tcp.svc.test,a.test,8080,10,5`. */
  args?: readonly string[];
}

/** A running dnsmasq. */
export interface Dnsmasq extends AsyncDisposable {
  /** Where it listens (UDP and TCP). */
  readonly resolver: HostPort;
  /** Its full command line, for messages. */
  readonly commandLine: string;
  /** What it has logged so far (queries included). */
  log(): string;
  /** Rewrites the hosts file and makes dnsmasq re-read it (SIGHUP): wait for the new answer after. */
  setHosts(text: string): Promise<void>;
  /** Kills it and waits for its exit; the port then answers nothing. */
  kill(): Promise<void>;
  /** Starts it again on the same port, with other `args` when given. */
  restart(args?: readonly string[]): Promise<void>;
}

/**
 * Starts dnsmasq on a free loopback port and waits until it answers.
 *
 * @param options The hosts file and more arguments.
 * @returns The server; dispose it (`await using`) to kill it and remove its files.
 */
export async function startDnsmasq(options: DnsmasqOptions = {}): Promise<Dnsmasq> {
  if (DNSMASQ === undefined) throw new Error(DNSMASQ_MISSING);
  const dir = await Deno.makeTempDir({ prefix: "lb-dnsmasq-" });
  // dnsmasq started as root reads the file as the "dnsmasq" or "nobody" user.
  await Deno.chmod(dir, 0o755);
  const hostsFile = `${dir}/hosts`;
  await _writeHosts(hostsFile, options.hosts ?? "");
  let args = [...(options.args ?? [])];
  let port = 0;
  let child: _Child | undefined;
  let logs = "";

  const commandLine = () => [DNSMASQ, ..._args(port, hostsFile, args)].join(" ");
  const stop = async () => {
    if (child === undefined) return;
    const running = child;
    child = undefined;
    try {
      running.process.kill("SIGKILL");
    } catch {
      // Exited already.
    }
    await running.process.status;
    await running.drained;
    logs += running.log;
  };
  const launch = async (fixedPort: boolean) => {
    for (let attempt = 1;; attempt++) {
      if (!fixedPort) port = freePort();
      child = _spawn(_args(port, hostsFile, args));
      const failure = await _waitReady(port, child);
      if (failure === undefined) return;
      await stop();
      // The port taken meanwhile (freePort is racy): another one, unless it must be this one.
      if (attempt >= 5 || (fixedPort && attempt >= 50)) {
        throw new Error(`dnsmasq did not start: ${failure}\n${commandLine()}\n${logs}`);
      }
      if (fixedPort) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  await launch(false);
  return {
    resolver: { hostname: LOOPBACK, port },
    get commandLine() {
      return commandLine();
    },
    log: () => logs + (child?.log ?? ""),
    async setHosts(text: string) {
      if (child === undefined) throw new Error("dnsmasq is not running");
      await _writeHosts(hostsFile, text);
      child.process.kill("SIGHUP");
    },
    kill: stop,
    async restart(newArgs?: readonly string[]) {
      await stop();
      if (newArgs !== undefined) args = [...newArgs];
      await launch(true);
    },
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

interface _Child {
  process: Deno.ChildProcess;
  /** Its stderr so far. */
  log: string;
  /** Resolves when its stderr ends. */
  drained: Promise<void>;
}

function _args(port: number, hostsFile: string, more: readonly string[]): string[] {
  return [
    "--no-daemon",
    "--conf-file=/dev/null",
    `--port=${port}`,
    `--listen-address=${LOOPBACK}`,
    "--bind-interfaces",
    "--no-resolv",
    "--no-hosts",
    "--local=/test/",
    `--addn-hosts=${hostsFile}`,
    `--host-record=${_READY_NAME},127.0.0.1`,
    "--log-queries",
    "--log-facility=-",
    ...more,
  ];
}

function _spawn(args: string[]): _Child {
  const process = new Deno.Command(DNSMASQ!, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const child: _Child = { process, log: "", drained: Promise.resolve() };
  child.drained = (async () => {
    for await (const text of process.stderr.pipeThrough(new TextDecoderStream())) {
      child.log += text;
    }
  })();
  return child;
}

/** Polls until dnsmasq answers; returns why it did not (it exited, or 5 s passed). */
async function _waitReady(port: number, child: _Child): Promise<string | undefined> {
  let exited: Deno.CommandStatus | undefined;
  child.process.status.then((status) => exited = status);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (exited !== undefined) return `it exited with status ${exited.code}`;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), 50);
    try {
      await Deno.resolveDns(_READY_NAME, "A", {
        nameServer: { ipAddr: LOOPBACK, port },
        signal: timeout.signal,
      });
      return undefined;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      clearTimeout(timer);
    }
  }
  return "it did not answer within 5 s";
}

async function _writeHosts(path: string, text: string): Promise<void> {
  // Written aside and renamed, so that dnsmasq never reads half a file.
  await Deno.writeTextFile(`${path}.new`, text);
  await Deno.chmod(`${path}.new`, 0o644);
  await Deno.rename(`${path}.new`, path);
}
