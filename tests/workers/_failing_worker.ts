// A Worker module that cannot start, for tests/workers/supervisor_test.ts.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = () => scope.postMessage({ type: "failed", message: "injected start failure" });
