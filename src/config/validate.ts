/**
 * The one validation of a whole config, after the file and the flags are
 * merged: what no single field can check on its own (names from a list,
 * fields that depend on each other, duplicates). Errors name each field the
 * way the user wrote it: the flag, or the file and its path.
 * @module
 */
import { formatHostPort } from "../common/address.ts";
import { ConfigError, describe } from "../common/errors.ts";
import { parseCidr } from "../admission/cidr.ts";
import { SniRoutes } from "../tls/sni_match.ts";
import { STRATEGY_NAMES } from "../balancing/strategies/mod.ts";
import { isLoopback } from "../observability/admin_guard.ts";
import { backendEntryId } from "./backend_entry.ts";
import type { Config } from "./config.ts";

const LOG_FORMATS = ["text", "json", "off"];

/**
 * Where each field of a config came from, for error messages: a field set by
 * a flag is named by the flag (`--health-timeout`), any other by the file and
 * its path (`lb.json: health.timeout`).
 */
export class FieldNames {
  /** The config file, or undefined when there is none. */
  readonly source: string | undefined;
  #flags = new Map<string, string>();

  constructor(source?: string) {
    this.source = source;
  }

  /** Records that the field at `path` was set by `flag`. */
  setByFlag(path: string, flag: string): void {
    this.#flags.set(path, flag);
  }

  /** Whether a flag set the field at `path`. */
  isFlag(path: string): boolean {
    return this.#flags.has(path);
  }

  /** How to name the field at `path` in an error. */
  name(path: string): string {
    return this.#flags.get(path) ?? (this.source === undefined ? path : `${this.source}: ${path}`);
  }
}

/**
 * Checks a merged config for what neither flags nor files may leave out or
 * get wrong together. Field types and ranges were checked when each was read.
 *
 * @param config The config from the file (or defaults) with the flags applied.
 * @param names How to name fields in errors. @default fields named by their path
 * @returns `config`, unchanged.
 * @throws {ConfigError} On the first problem found.
 */
export function validateConfig(config: Config, names: FieldNames = new FieldNames()): Config {
  if (!LOG_FORMATS.includes(config.log)) {
    throw new ConfigError(
      `${names.name("log")} must be "text", "json" or "off": got ${JSON.stringify(config.log)}`,
    );
  }
  if (config.health.interval > 0 && config.health.timeout === 0) {
    throw new ConfigError(
      `${names.name("health.timeout")} must be more than 0 when checks are on`,
    );
  }
  if (config.connectTimeout === 0) {
    throw new ConfigError(`${names.name("connectTimeout")} must be more than 0`);
  }
  if (config.sniTimeout === 0) {
    throw new ConfigError(`${names.name("sniTimeout")} must be more than 0`);
  }
  if (
    config.admin && !isLoopback(config.admin.hostname) && config.adminTokenFile === null &&
    !config.adminInsecure
  ) {
    throw new ConfigError(
      `${names.name("admin")} ${formatHostPort(config.admin)} is not a loopback address: anyone ` +
        `who can reach it could drain backends and reload lb; give --admin-token-file PATH ` +
        `(or --admin-insecure to allow it without one)`,
    );
  }
  _cidrs(config.allow, "allow", names);
  _cidrs(config.deny, "deny", names);
  _unique(config.frontends.map((f) => f.name), "frontends", ".name", names);
  const listens = config.frontends.map((f) => f.listen.port === 0 ? "" : formatHostPort(f.listen));
  _unique(listens, "frontends", ".listen", names);
  config.frontends.forEach((frontend, i) => {
    const path = `frontends[${i}]`;
    if (!STRATEGY_NAMES.includes(frontend.balance)) {
      throw new ConfigError(
        `${names.name(`${path}.balance`)} must be one of ${STRATEGY_NAMES.join(", ")}: got ${
          JSON.stringify(frontend.balance)
        }`,
      );
    }
    if (frontend.acceptProxy?.timeout === 0) {
      throw new ConfigError(`${names.name(`${path}.acceptProxy.timeout`)} must be more than 0`);
    }
    _cidrs(frontend.acceptProxy?.from ?? [], `${path}.acceptProxy.from`, names);
    _cidrs(frontend.allow ?? [], `${path}.allow`, names);
    if (frontend.tls && frontend.acceptProxy) {
      throw new ConfigError(
        `${names.name(`${path}.tls`)}: TLS termination cannot be combined with --accept-proxy ` +
          `(Deno's TLS listener reads the first bytes itself, before a PROXY header could be taken)`,
      );
    }
    if (frontend.tls && frontend.backends.some((b) => b.sni)) {
      throw new ConfigError(
        `${names.name(`${path}.tls`)}: sni= routes TLS without decrypting it; a frontend that ` +
          `terminates TLS (--tls-cert) cannot also route by sni=`,
      );
    }
    frontend.backends.forEach((backend, k) => {
      if (backend.tlsName !== undefined) {
        try {
          new SniRoutes([{ names: [backend.tlsName], value: k }]);
        } catch (error) {
          const where = names.isFlag(`${path}.backends`)
            ? "-p/--backend tls-name"
            : names.name(`${path}.backends[${k}].tlsName`);
          throw new ConfigError(`${where}: ${describe(error)}`, { cause: error });
        }
      }
      if (!backend.sni) return;
      try {
        new SniRoutes([{ names: backend.sni, value: k }]);
      } catch (error) {
        const where = names.isFlag(`${path}.backends`)
          ? "-p/--backend"
          : names.name(`${path}.backends[${k}].sni`);
        throw new ConfigError(`${where}: ${describe(error)}`, { cause: error });
      }
    });
    _cidrs(frontend.deny ?? [], `${path}.deny`, names);
    // A backend's `host:port` (`srv:NAME`) is its id in metrics, admin URLs and reloads.
    const ids = frontend.backends.map((b) => backendEntryId(b));
    if (names.isFlag(`${path}.backends`)) {
      const twice = ids.find((id, k) => ids.indexOf(id) !== k);
      if (twice !== undefined) {
        throw new ConfigError(`-p/--backend ${twice} is given twice: list each backend once`);
      }
    }
    _unique(ids, `${path}.backends`, "", names);
    if (frontend.backends.length === 0) {
      const where = config.frontends.length === 1 ? "" : `${path} `;
      throw new ConfigError(`${where}no backends given: use -p PORT at least once`, {
        showUsage: true,
      });
    }
  });
  return config;
}

/** Checks every CIDR of the list at `path`, naming the flag or the entry. */
function _cidrs(list: readonly string[], path: string, names: FieldNames): void {
  list.forEach((cidr, k) => {
    const name = names.isFlag(path) ? names.name(path) : names.name(`${path}[${k}]`);
    try {
      parseCidr(cidr, name);
    } catch (error) {
      throw new ConfigError(describe(error), { cause: error });
    }
  });
}

/** Throws on the first value in `values` seen before ("" is never a repeat). */
function _unique(values: string[], path: string, field: string, names: FieldNames): void {
  values.forEach((value, i) => {
    const first = values.indexOf(value);
    if (value !== "" && first !== i) {
      throw new ConfigError(
        `${names.name(`${path}[${i}]${field}`)} repeats ${path}[${first}]${field}: ${
          JSON.stringify(value)
        }`,
      );
    }
  });
}
