import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { z } from "zod";

/** The parts of an OpenFaaS stack.yml that fanwatch reads (faas-cli accepts more). */
const StackFunctionSchema = z.object({
  lang: z.string(),
  handler: z.string(),
  image: z.string(),
  environment: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).default({}),
  labels: z.record(z.string(), z.string()).default({}),
  annotations: z.record(z.string(), z.string()).default({}),
  secrets: z.array(z.string()).default([]),
  readonly_root_filesystem: z.boolean().default(false),
  limits: z.object({ memory: z.string().optional(), cpu: z.string().optional() }).optional(),
  requests: z.object({ memory: z.string().optional(), cpu: z.string().optional() }).optional(),
});

const StackSchema = z.object({
  version: z.union([z.string(), z.number()]).transform(String),
  provider: z.object({ name: z.literal("openfaas"), gateway: z.string() }),
  configuration: z.object({ copy: z.array(z.string()).default([]) }).default({ copy: [] }),
  functions: z.record(z.string(), StackFunctionSchema),
});

export type Stack = z.infer<typeof StackSchema>;
export type StackFunction = z.infer<typeof StackFunctionSchema>;

/** faas-cli substitutes `${VAR}` and `${VAR:-default}` from the environment before parsing. */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, fallback?: string) => {
    const value = env[name];
    return value !== undefined && value !== "" ? value : (fallback ?? "");
  });
}

export function parseStack(text: string, env: NodeJS.ProcessEnv = process.env): Stack {
  return StackSchema.parse(parse(substituteEnv(text, env)));
}

export async function readStack(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Stack> {
  return parseStack(await readFile(file, "utf8"), env);
}
