// Tinybird's official TypeScript client, @tinybirdco/sdk (its TinybirdApi): ingest, query, sql, and
// the errors it raises, against whatever server baseUrl names.
//
// node tinybird_sdk.mjs '<json>'  with {baseUrl, token, op, ...}; prints one JSON line.
//   op "ingest": datasource, rows        -> the ingest answer
//   op "query":  pipe, params            -> the pipe's answer
//   op "sql":    sql                     -> the Query API's answer
//   op "errors": datasource, pipe        -> {name: {status, message}} for calls that must fail
import { createTinybirdApi } from "@tinybirdco/sdk";

const args = JSON.parse(process.argv[2]);
const api = createTinybirdApi({ baseUrl: args.baseUrl, token: args.token });

async function failure(call) {
  try {
    await call();
    return { status: null, message: "no error" };
  } catch (err) {
    return { status: err.statusCode ?? err.status ?? null, message: String(err.message), name: err.name };
  }
}

async function main() {
  switch (args.op) {
    case "ingest":
      return await api.ingestBatch(args.datasource, args.rows, { wait: true });
    case "query":
      return await api.query(args.pipe, args.params ?? {});
    case "sql":
      return await api.sql(args.sql);
    case "errors": {
      const bad = createTinybirdApi({ baseUrl: args.baseUrl, token: "p.not-the-token" });
      return {
        unknown_datasource: await failure(() => api.ingestBatch("no_such_datasource", [{ a: 1 }])),
        unknown_pipe: await failure(() => api.query("no_such_pipe", {})),
        missing_parameter: await failure(() => api.query(args.pipe, {})),
        wrong_token: await failure(() => bad.query(args.pipe, { event_id: "x" })),
        bad_sql: await failure(() => api.sql("SELECT nope FROM audit_log FORMAT JSON")),
        system_table: await failure(() => api.sql("SELECT * FROM system.tables FORMAT JSON")),
      };
    }
    default:
      throw new Error(`unknown op ${args.op}`);
  }
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out) + "\n"),
  (err) => {
    process.stdout.write(JSON.stringify({ crash: String(err && err.stack ? err.stack : err) }) + "\n");
    process.exitCode = 1;
  },
);
