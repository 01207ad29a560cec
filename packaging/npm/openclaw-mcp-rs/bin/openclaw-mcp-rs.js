#!/usr/bin/env node
// openclaw-mcp-rs launcher: runs the native openclaw-mcp binary of this platform, which npm
// installed as one of this package's optional dependencies (each declares the `os` and `cpu` it
// is for, so npm fetches only the matching one). Nothing is downloaded or built at install time
// and no install script runs: this file only finds the binary and hands the process over to it.
//
// stdin, stdout and stderr are the binary's own (inherited, never copied through Node), so the MCP
// stream is exactly what the binary writes. SIGINT, SIGTERM and SIGHUP are passed on to it; when it
// ends, this process ends the same way: with its exit code, or by the signal that stopped it.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");

// `${process.platform}-${process.arch}` -> the optional dependency that carries its binary.
const PACKAGES = {
  "linux-x64": "openclaw-mcp-rs-linux-x64",
  "linux-arm64": "openclaw-mcp-rs-linux-arm64",
  "darwin-x64": "openclaw-mcp-rs-darwin-x64",
  "darwin-arm64": "openclaw-mcp-rs-darwin-arm64",
  "win32-x64": "openclaw-mcp-rs-win32-x64",
  // Windows on Arm runs the x64 binary under its built-in emulation.
  "win32-arm64": "openclaw-mcp-rs-win32-x64",
};

function fail(message) {
  process.stderr.write(`openclaw-mcp-rs: ${message}\n`);
  process.exit(1);
}

function binaryPath() {
  const platform = `${process.platform}-${process.arch}`;
  const pkg = PACKAGES[platform];
  if (!pkg) {
    fail(
      `no prebuilt binary for ${platform} (there are: ${Object.keys(PACKAGES).join(", ")}). ` +
        "Build it from source instead: cargo install openclaw-mcp --locked",
    );
  }
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    fail(
      `the binary package ${pkg} is not installed. npm leaves optional dependencies out with ` +
        "--omit=optional (or --no-optional); install again without it, e.g. `npx -y openclaw-mcp-rs@latest`.",
    );
  }
  return path.join(dir, "bin", process.platform === "win32" ? "openclaw-mcp.exe" : "openclaw-mcp");
}

const binary = binaryPath();
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", windowsHide: true });

const forwarded = ["SIGINT", "SIGTERM", "SIGHUP"];
for (const signal of forwarded) {
  process.on(signal, () => {
    try {
      child.kill(signal);
    } catch {
      // The child is already gone: its exit handler ends this process.
    }
  });
}

child.on("error", (error) => fail(`cannot start ${binary}: ${error.message}`));
child.on("exit", (code, signal) => {
  if (signal) {
    // Die of the same signal, so that whoever started us sees what happened to the server.
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code === null ? 1 : code);
});
