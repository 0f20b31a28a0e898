// A Worker module for tests/workers/supervisor_test.ts whose worker 1 answers
// and then dies, while worker 2 answers late. It logs (as access-log lines,
// `w<index>g<generation> ...`) the config it started with and the reload and
// stop messages it gets. Its args choose the timing:
// - `prepare-dies=MS`: worker 1's first incarnation answers `prepare` at once
//   and dies MS later; worker 2 answers `prepare` after `slow=MS`;
// - worker 1's first incarnation reports 5 source-table evictions in its
//   tallies and dies right after answering the second; the others report 0,
//   and worker 2 answers tallies 300 ms late.
interface Start {
  type?: undefined;
  index: number;
  generation: number;
  args: string[];
  config: { maxConns: number };
}
type Control =
  | { type: "prepare" | "decide"; reload: number; apply?: boolean }
  | { type: "tally"; request: number }
  | { type: "stop"; signal: string };
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<Start | Control>) => void) | null;
  postMessage(message: unknown): void;
};
let me = { index: 0, generation: 0 };
let option = (_name: string) => 0;
let tallies = 0;
const log = (text: string) =>
  scope.postMessage({ type: "log", lines: `w${me.index}g${me.generation} ${text}\n` });
const die = (ms: number) =>
  setTimeout(() => {
    throw new Error("injected crash after answering");
  }, ms);
const first = () => me.index === 1 && me.generation === 0;

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === undefined) {
    me = { index: message.index, generation: message.generation };
    const args = message.args;
    option = (name) => Number(args.find((a) => a.startsWith(`${name}=`))?.split("=")[1] ?? 0);
    log(`start maxConns=${message.config.maxConns}`);
    scope.postMessage({ type: "ready" });
  } else if (message.type === "prepare") {
    log("prepare");
    const answer = () => scope.postMessage({ type: "prepared", reload: message.reload });
    if (first()) {
      answer();
      die(option("prepare-dies"));
    } else setTimeout(answer, me.index === 2 ? option("slow") : 0);
  } else if (message.type === "decide") {
    log(`decide ${message.apply}`);
  } else if (message.type === "tally") {
    tallies++;
    const evictions = first() ? 5 : 0;
    const tally = {
      frontends: {},
      threads: [{ thread: me.index, active: 0, total: 0 }],
      sources: { size: 0, evictions },
    };
    const answer = () => scope.postMessage({ type: "tally", request: message.request, tally });
    if (me.index === 2) setTimeout(answer, 300);
    else answer();
    if (first() && tallies === 2) die(20);
  } else if (message.type === "stop") {
    log(`stop ${message.signal}`);
  }
};
