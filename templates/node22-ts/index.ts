// Container entry point: esbuild bundles this file, the server and function/handler.ts into one file.
import * as fn from "./function/handler.js";
import { closeOnSignals, serverOptionsFromEnv, startFunctionServer } from "./server.js";

const server = await startFunctionServer(fn, serverOptionsFromEnv());
closeOnSignals(server);
