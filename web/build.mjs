// Builds web/ with esbuild:
//   node build.mjs           the demo page into demo/dist/ (committed; the server embeds it)
//   node build.mjs --pages   the browser tests' pages into .build/pages/
//   node build.mjs --tests   the unit tests into .build/test/
//   node build.mjs --lib     the library as one ES module, dist/viewersession.js
// Output is deterministic: the same sources give the same bytes.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";

const args = new Set(process.argv.slice(2));
const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning", legalComments: "none", charset: "utf8" };

if (args.has("--lib")) {
  await build({ ...common, entryPoints: { viewersession: "src/index.ts" }, outdir: "dist", platform: "browser", minify: true, sourcemap: true });
} else if (args.has("--tests")) {
  rmSync(".build/test", { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: ["test/*.test.ts"],
    outdir: ".build/test",
    outExtension: { ".js": ".mjs" },
    platform: "node",
    sourcemap: "inline",
  });
} else if (args.has("--pages")) {
  rmSync(".build/pages", { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: ["browsertest/pages/viewer.ts", "browsertest/pages/camera.ts"],
    outdir: ".build/pages",
    platform: "browser",
    sourcemap: "inline",
  });
  await build({ ...common, entryPoints: { viewersession: "src/index.ts" }, outdir: ".build/pages", platform: "browser", minify: true });
  cpSync("browsertest/pages/viewer.html", ".build/pages/viewer.html");
  cpSync("browsertest/pages/camera.html", ".build/pages/camera.html");
  cpSync("node_modules/amazon-kinesis-video-streams-webrtc/dist/kvs-webrtc.min.js", ".build/pages/kvs-webrtc.min.js");
} else {
  rmSync("demo/dist", { recursive: true, force: true });
  mkdirSync("demo/dist", { recursive: true });
  await build({
    ...common,
    entryPoints: ["demo/src/demo.ts", "demo/src/demo.css"],
    outdir: "demo/dist",
    platform: "browser",
    minify: true,
  });
  cpSync("demo/src/index.html", "demo/dist/index.html");
}
