// The seed's own client, @chronark/zod-bird, as the seed uses it: events published through
// buildIngestEndpoint (objects turned into JSON strings by zod transforms) and read back through
// buildPipe (JSON strings parsed back by z.preprocess).
//
// node zod_bird.mjs '<json>'  with {baseUrl, token, datasource, pipe, op, ...}; prints one JSON line.
//   op "publish": events -> the ingest answer
//   op "read":    params -> the pipe's rows, parsed
//   op "error":   publishes to datasource and reports the error zod-bird raised
import { Tinybird } from "@chronark/zod-bird";
import { z } from "zod";

const args = JSON.parse(process.argv[2]);
const tb = new Tinybird({ token: args.token, baseUrl: args.baseUrl });

// The seed's event, plus auditbird's uid and workspace (the seed's schema has neither).
const event = z.object({
  uid: z.string(),
  workspace: z.string().default(""),
  id: z.string(),
  action: z.string(),
  actor: z
    .object({ id: z.string(), name: z.string() })
    .default({ id: "", name: "system" })
    .transform((v) => JSON.stringify(v)),
  targets: z
    .array(z.union([z.object({ id: z.string(), type: z.string() }), z.object({ id: z.string(), name: z.string() })]))
    .default([])
    .transform((v) => JSON.stringify(v)),
  metadata: z.unknown().transform((v) => JSON.stringify(v ?? null)),
  timestamp: z.number().int().default(() => Date.now()),
  version: z.number().int().default(1),
});

const parsed = (schema) => z.preprocess((v) => (typeof v === "string" ? JSON.parse(v) : v), schema);
const row = z.object({
  uid: z.string(),
  workspace: z.string(),
  id: z.string(),
  action: z.string(),
  actor: parsed(z.object({ id: z.string(), name: z.string() })),
  targets: parsed(z.array(z.record(z.string(), z.string()))),
  metadata: parsed(z.unknown()),
  timestamp: z.number(),
  version: z.number(),
});

async function main() {
  if (args.op === "publish" || args.op === "error") {
    const ingest = tb.buildIngestEndpoint({ datasource: args.datasource, event, wait: true });
    try {
      return { ok: await ingest(args.events) };
    } catch (err) {
      return { error: String(err.message) };
    }
  }
  if (args.op === "read") {
    const pipe = tb.buildPipe({
      pipe: args.pipe,
      parameters: z.record(z.string(), z.string()),
      data: row,
    });
    const res = await pipe(args.params);
    return { data: res.data, meta: res.meta, rows: res.rows };
  }
  throw new Error(`unknown op ${args.op}`);
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out) + "\n"),
  (err) => {
    process.stdout.write(JSON.stringify({ crash: String(err && err.stack ? err.stack : err) }) + "\n");
    process.exitCode = 1;
  },
);
