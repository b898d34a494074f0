// build.ps1 bench: graphile-worker's submit and drain on the PostgreSQL cluster PerfectQueue is measured on, in the
// same run. build.ps1 installs graphile-worker into a temporary folder and copies this file next to its node_modules
// (an ES module resolves packages from its own folder, not from NODE_PATH); PerfectQueue.Bench runs it with node and
// reads one "GWBENCH {json}" line per case from its output. Nothing here ships in the module.
//
// Environment: PQBENCH_GW_URL (connection string), PQBENCH_GW_SCHEMA (a schema of its own, dropped by the caller),
// PQBENCH_COUNT, PQBENCH_BATCH, PQBENCH_WARMUP, PQBENCH_CONCURRENCY, PQBENCH_TIMEOUT (seconds per drain).
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (PerfectQueue.Bench sets it).`);
  return value;
};
const connectionString = env("PQBENCH_GW_URL");
const schema = env("PQBENCH_GW_SCHEMA");
const count = Number(env("PQBENCH_COUNT"));
const batch = Number(env("PQBENCH_BATCH"));
const warmup = Number(process.env.PQBENCH_WARMUP ?? "0");
const concurrency = Number(env("PQBENCH_CONCURRENCY"));
const timeoutMs = 1000 * Number(env("PQBENCH_TIMEOUT"));

// The version installed beside this file (build.ps1 pins it; the package exports no package.json to resolve).
const installed = JSON.parse(readFileSync(new URL("./node_modules/graphile-worker/package.json", import.meta.url), "utf8"));
const version = installed.version;
const nodeRequired = installed.engines?.node ?? null;

// Warnings and errors only: by default graphile-worker prints a line per job, and PerfectQueue's compiled drain prints none.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
});
const shared = { connectionString, schema, logger };
const noop = { noop: async () => {} };
const batchedPreset = { worker: { localQueue: { size: 100 }, completeJobBatchDelay: 0 } };

const report = (result) => console.log("GWBENCH " + JSON.stringify({ version, node: process.version, nodeRequired, ...result }));

await runMigrations(shared);
const utils = await makeWorkerUtils(shared);
const query = (sql) => utils.withPgClient((client) => client.query(sql));
const walPosition = async () => BigInt((await query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS at")).rows[0].at);
const rowsLeft = async () => (await query(`SELECT count(*)::int AS n FROM ${schema}._private_jobs`)).rows[0].n;

async function submitSingle(n, measured) {
  const wal = await walPosition();
  const start = performance.now();
  for (let i = 0; i < n; i++) await utils.addJob("noop", {});
  const seconds = (performance.now() - start) / 1000;
  if (measured) report({ case: "submit-single", count: n, seconds, complete: true, walBytes: String((await walPosition()) - wal) });
}

async function submitBatch(n, measured) {
  const wal = await walPosition();
  const start = performance.now();
  for (let done = 0; done < n; done += batch)
    await utils.addJobs(Array.from({ length: Math.min(batch, n - done) }, () => ({ identifier: "noop", payload: {} })));
  const seconds = (performance.now() - start) / 1000;
  if (measured) report({ case: "submit-batch", count: n, seconds, complete: true, walBytes: String((await walPosition()) - wal) });
}

// Timed from calling run() to the moment no job row is left: a job's row is deleted when it succeeds (with
// completeJobBatchDelay, a little after its handler returned). The table is only polled once every job has
// reported completion, so the polls do not compete with the drain for the cores.
async function drain(name, n, preset) {
  const events = new EventEmitter();
  let completed = 0, succeeded = 0;
  let allCompleted;
  const allDone = new Promise((resolve) => (allCompleted = resolve));
  events.on("job:success", () => succeeded++);
  events.on("job:complete", () => { if (++completed >= n) allCompleted(); });

  const wal = await walPosition();
  const start = performance.now();
  const runner = await run({ ...shared, concurrency, events, taskList: noop, noHandleSignals: true, ...(preset ? { preset } : {}) });
  let timer;
  const timedOut = new Promise((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  let left = -1;
  if ((await Promise.race([allDone, timedOut])) !== "timeout") {
    while ((left = await rowsLeft()) > 0 && performance.now() - start < timeoutMs) await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - start) / 1000;
  clearTimeout(timer);
  const walBytes = (await walPosition()) - wal;
  await runner.stop();
  if (left < 0) left = await rowsLeft();
  if (name) report({ case: name, count: n, seconds, complete: succeeded === n && left === 0, succeeded, rowsLeft: left, walBytes: String(walBytes) });
  else if (succeeded !== n || left !== 0) throw new Error(`Warm-up drain: ${succeeded} of ${n} succeeded, ${left} rows left.`);
}

try {
  // Warm-up, not measured, as PerfectQueue's: both submits, then a drain with the defaults.
  if (warmup > 0) {
    await submitSingle(warmup, false);
    await submitBatch(warmup, false);
    await drain(null, 2 * warmup, null);
  }
  await submitSingle(count, true);
  await drain("drain-defaults", count, null);
  await submitBatch(count, true);
  await drain("drain-batched", count, batchedPreset);
} finally {
  await utils.release();
}
