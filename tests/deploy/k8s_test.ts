/**
 * The Kubernetes manifests (deploy/k8s/): valid API objects, checked offline
 * against the Kubernetes API's models (Debian's python3-kubernetes, generated
 * from the API's OpenAPI spec, through tests/deploy/k8s_schema.py: `kubectl
 * apply --dry-run=client` needs a cluster to discover the API, so it cannot
 * serve here); their lb flags and config file pass `lb --check`, with the
 * cluster's DNS name answered by dnsmasq; the probe paths are lb's.
 *
 * The `lb --check` and probe tests read the YAML text with two small,
 * format-bound extractions (the container's `args:` written as a JSON flow
 * list on one line, the ConfigMap's `lb.json: |` block), not a YAML parser:
 * lb has no dependencies, and the schema test (which has one, PyYAML) may be
 * ignored where python3-kubernetes is missing.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import type { Config } from "../../src/config/config.ts";
import { parseConfigText } from "../../src/config/file.ts";
import { handle } from "../../src/observability/admin.ts";
import { Logger } from "../../src/observability/log.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { DNSMASQ_MISSING, startDnsmasq } from "../discovery/_dnsmasq.ts";

const K8S = new URL("../../deploy/k8s/", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const SCHEMA = new URL("./k8s_schema.py", import.meta.url).pathname;
/** Debian's python: the one python3-kubernetes installs into (another may come first on PATH). */
const PYTHON = "/usr/bin/python3";
const decoder = new TextDecoder();

function manifests(): string[] {
  return [...Deno.readDirSync(K8S)]
    .filter((entry) => entry.name.endsWith(".yaml"))
    .map((entry) => K8S + entry.name)
    .sort();
}

function read(name: string): string {
  return Deno.readTextFileSync(K8S + name);
}

/** The lb container's `args:`, written as a JSON flow list on one line. */
function lbArgs(): string[] {
  const line = read("deployment.yaml").split("\n").find((l) => /^\s*args: \[/.test(l));
  ok(line, "deployment.yaml has no one-line args: [...]");
  return JSON.parse(line.slice(line.indexOf("[")));
}

/** The ConfigMap's `lb.json: |` block, unindented. */
function lbJson(): string {
  const lines = read("configmap.yaml").split("\n");
  const start = lines.findIndex((l) => /^\s*lb\.json: \|\s*$/.test(l));
  ok(start >= 0, "configmap.yaml has no lb.json: | block");
  const indent = /^\s*/.exec(lines[start + 1]!)![0].length;
  const block: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== "" && /^\s*/.exec(line)![0].length < indent) break;
    block.push(line.slice(indent));
  }
  return block.join("\n").trimEnd();
}

function lbConfig(): Config {
  return parseConfigText(lbJson(), "configmap.yaml lb.json");
}

function python(): string | undefined {
  try {
    const { success } = new Deno.Command(PYTHON, {
      args: ["-c", "import kubernetes.client, yaml"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success ? undefined : "python3-kubernetes is not installed";
  } catch {
    return `${PYTHON} is missing`;
  }
}

const PYTHON_MISSING = python();

interface Doc {
  file: string;
  // deno-lint-ignore no-explicit-any
  document: any;
}

Deno.test({
  name: "deploy/k8s manifests are valid Kubernetes objects, checked offline against the API's " +
    "models, and fit together and with lb's config" +
    (PYTHON_MISSING ? ` (ignored: ${PYTHON_MISSING}; apt-get install python3-kubernetes)` : ""),
  ignore: PYTHON_MISSING !== undefined,
  async fn() {
    const { code, stdout, stderr } = await new Deno.Command(PYTHON, {
      args: [SCHEMA, ...manifests()],
      stdin: "null",
    }).output();
    assertEquals(code, 0, decoder.decode(stderr));
    const docs: Doc[] = JSON.parse(decoder.decode(stdout));
    const kinds = docs.map((d) => `${d.document.kind}/${d.document.metadata.name}`).sort();
    assertEquals(kinds, [
      "ConfigMap/lb-config",
      "Deployment/lb",
      "PodDisruptionBudget/lb",
      "Service/backend",
      "Service/lb",
    ]);
    const find = (kind: string, name: string) =>
      docs.find((d) => d.document.kind === kind && d.document.metadata.name === name)!.document;
    const deployment = find("Deployment", "lb");
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    const labels = deployment.spec.template.metadata.labels;
    const selects = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);
    ok(selects(deployment.spec.selector.matchLabels), "the Deployment selects its pods");
    ok(selects(find("Service", "lb").spec.selector), "the Service selects lb's pods");
    ok(selects(find("PodDisruptionBudget", "lb").spec.selector.matchLabels), "so does the PDB");
    ok(deployment.spec.replicas >= 2, "several replicas");

    // The config the pods run: the ConfigMap's lb.json, as the Deployment mounts it.
    const config = lbConfig();
    assertEquals(find("ConfigMap", "lb-config").data["lb.json"].trimEnd(), lbJson());
    const mounts = Object.fromEntries(
      container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]),
    );
    ok(container.args.includes(`${mounts.config}/lb.json`), container.args.join(" "));
    ok(config.adminTokenFile?.startsWith(`${mounts["admin-token"]}/`), config.adminTokenFile!);
    const volume = pod.volumes.find((v: { name: string }) => v.name === "admin-token");
    ok(volume.secret.secretName, "the admin token comes from a Secret");

    // Ports: the probes reach the admin endpoint, the Service the frontend.
    const port = (name: string) =>
      container.ports.find((p: { name: string }) => p.name === name).containerPort;
    assertEquals(port("admin"), config.admin!.port);
    assertEquals(port("tcp"), config.frontends[0]!.listen.port);
    assertEquals([container.readinessProbe.httpGet.path, container.readinessProbe.httpGet.port], [
      "/ready",
      "admin",
    ]);
    assertEquals([container.livenessProbe.httpGet.path, container.livenessProbe.httpGet.port], [
      "/healthz",
      "admin",
    ]);
    const service = find("Service", "lb").spec;
    assertEquals([service.type, service.externalTrafficPolicy], ["LoadBalancer", "Local"]);
    assertEquals(service.ports[0].targetPort, "tcp");

    // The drain fits in the grace period: SIGKILL never cuts it short.
    ok(
      pod.terminationGracePeriodSeconds * 1000 > config.drainDelay + config.drainTimeout,
      `${pod.terminationGracePeriodSeconds}s <= ${config.drainDelay}ms + ${config.drainTimeout}ms`,
    );
    ok(config.drainDelay > 0, "a drain delay, so that endpoints are removed before lb stops");

    // Non-root, read-only, with requests.
    assertEquals(pod.securityContext.runAsNonRoot, true);
    assertEquals(container.securityContext.readOnlyRootFilesystem, true);
    assertEquals(container.securityContext.allowPrivilegeEscalation, false);
    ok(container.resources.requests.cpu && container.resources.requests.memory);

    // The backends: the headless Service's DNS name and port.
    const backend = find("Service", "backend");
    assertEquals(backend.spec.clusterIP, "None");
    const [entry] = config.frontends[0]!.backends;
    assertEquals(
      `${entry!.hostname}:${entry!.port}`,
      `${backend.metadata.name}.default.svc.cluster.local:${backend.spec.ports[0].port}`,
    );
    assertEquals(backend.spec.ports[0].name, "http", "SRV _http._tcp.backend... exists");
  },
});

Deno.test({
  name: "deploy/k8s: the lb flags and config file in the manifests pass lb --check" +
    (DNSMASQ_MISSING ? " (ignored: dnsmasq missing)" : ""),
  ignore: DNSMASQ_MISSING !== undefined,
  async fn() {
    // The cluster's DNS, for the headless Service's name and its SRV records.
    await using dns = await startDnsmasq({
      args: [
        "--host-record=backend.default.svc.cluster.local,127.0.0.2",
        "--host-record=backend.default.svc.cluster.local,127.0.0.3",
        "--srv-host=_http._tcp.backend.default.svc.cluster.local," +
        "backend.default.svc.cluster.local,8080",
      ],
    });
    const dir = await Deno.makeTempDir({ prefix: "lb-k8s-" });
    try {
      const tokenPath = lbConfig().adminTokenFile!;
      await Deno.writeTextFile(`${dir}/token`, "a-token-from-the-secret\n");
      await Deno.writeTextFile(`${dir}/lb.json`, lbJson().replace(tokenPath, `${dir}/token`));
      const args = lbArgs().map((arg) => arg === "/etc/lb/lb.json" ? `${dir}/lb.json` : arg);
      const check = async (...more: string[]) => {
        const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-net",
            "--allow-read",
            MAIN,
            "--check",
            ...args,
            "--resolver",
            `${dns.resolver.hostname}:${dns.resolver.port}`,
            ...more,
          ],
          stdin: "null",
        }).output();
        return [code, decoder.decode(stdout) + decoder.decode(stderr)] as const;
      };
      const [code, text] = await check();
      assertEquals(code, 0, text);
      ok(
        text.includes("(1 frontend(s), 1 backend(s), 1 name(s) resolved to 2 address(es))"),
        text,
      );
      // The SRV form the ConfigMap's comment offers passes too.
      const [srvCode, srvText] = await check(
        "-p",
        "srv:_http._tcp.backend.default.svc.cluster.local",
      );
      assertEquals(srvCode, 0, srvText);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("deploy/k8s: the probe paths are lb's /ready and /healthz, answered without the admin token", async () => {
  const paths = [...read("deployment.yaml").matchAll(/^\s*path: (\S+)\s*$/gm)].map((m) => m[1]!);
  assertEquals(paths.sort(), ["/healthz", "/ready"]);
  const lb = { frontends: [], started: Date.now() };
  for (const path of paths) {
    // As the kubelet asks: Host is the pod's address and the probe's port.
    const request = new Request(`http://10.0.0.7:9090${path}`, {
      headers: { host: "10.0.0.7:9090" },
    });
    const response = await handle(request, {
      lb,
      metrics: new Metrics(),
      logger: new Logger(() => {}),
      token: "a-token-from-the-secret",
    }, { hosts: ["10.0.0.7:9090"] });
    await response.body?.cancel();
    ok([200, 503].includes(response.status), `${path}: ${response.status}`);
  }
});
