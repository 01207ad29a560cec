// Computes what an MCP Bundle host (Claude Desktop) starts for an installed bundle: the command,
// arguments and environment of its manifest for one platform, with `${__dirname}` and
// `${user_config.*}` substituted. It calls the mcpb library's own getMcpConfigForManifest (the
// code Claude Desktop uses), so the defaults, the platform override and the substitution are the
// host's, not a copy of them.
//
//   node scripts/mcpb_env.mjs MCPB_PACKAGE_DIR BUNDLE_DIR PLATFORM USER_CONFIG_JSON
//
// PLATFORM is darwin, win32 or linux; USER_CONFIG_JSON what the user typed in the settings
// (e.g. {"gateway_url": "http://localhost:18789", "gateway_token": "…"}). Prints
// {"command", "args", "env"} as JSON; exits 1 if the host would refuse to start the server
// (a required setting missing) or if a `${…}` is left unsubstituted.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [mcpbDir, bundleDir, platform, userConfigJson] = process.argv.slice(2);
if (!userConfigJson) {
  console.error("usage: node scripts/mcpb_env.mjs MCPB_PACKAGE_DIR BUNDLE_DIR PLATFORM USER_CONFIG_JSON");
  process.exit(2);
}
const { getMcpConfigForManifest } = await import(pathToFileURL(path.join(mcpbDir, "dist", "index.js")).href);
const manifest = JSON.parse(readFileSync(path.join(bundleDir, "manifest.json"), "utf8"));
// getMcpConfigForManifest picks the override of process.platform: pretend to be the host's OS.
Object.defineProperty(process, "platform", { value: platform });
const config = await getMcpConfigForManifest({
  manifest,
  extensionPath: path.resolve(bundleDir),
  systemDirs: {},
  userConfig: JSON.parse(userConfigJson),
  pathSeparator: platform === "win32" ? "\\" : "/",
  logger: { warn: (m) => console.error(`mcpb: ${m}`), log: () => {}, error: (m) => console.error(m) },
});
if (!config) {
  console.error("the host would not start this server (a required user_config value is missing)");
  process.exit(1);
}
const text = JSON.stringify(config);
if (/\$\{[^}]*\}/.test(text)) {
  console.error(`unsubstituted variables left: ${text}`);
  process.exit(1);
}
console.log(JSON.stringify({ command: config.command, args: config.args ?? [], env: config.env ?? {} }, null, 2));
