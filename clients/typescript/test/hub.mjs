// Starts a real `hub serve` (the binary at $HUB, else ../../target/debug/hub)
// on a free loopback port over a fresh data directory, and answers its base
// URL and the sandbox's test keys.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const HUB = process.env.HUB ?? join(here, "..", "..", "..", "target", "debug", "hub");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function startHub(extra = []) {
  const data = mkdtempSync(join(tmpdir(), "hub-ts-"));
  const port = await freePort();
  const proc = spawn(
    HUB,
    ["serve", "--addr", `127.0.0.1:${port}`, "--data", data, "--log", "error", "--retry-schedule", "1s,1s", ...extra],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`hub serve exited: ${stderr}`);
    if (existsSync(join(data, "sandbox.json"))) {
      try {
        const r = await fetch(`${baseUrl}/health`);
        if (r.ok) break;
      } catch {}
    }
    if (Date.now() > deadline) throw new Error(`hub serve did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const sandbox = JSON.parse(readFileSync(join(data, "sandbox.json"), "utf8"));
  return {
    baseUrl,
    secretKey: sandbox.keys.test.secret,
    publishableKey: sandbox.keys.test.publishable,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once("exit", r)));
      rmSync(data, { recursive: true, force: true });
    },
  };
}
