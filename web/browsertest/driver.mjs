// driver.mjs: a remote control of headless Chromium for the Go browser tests.
//
// It reads one JSON command per line on stdin and answers each with one
// JSON line on stdout ({"reply":id,"result":...} or {"reply":id,"error":...});
// what the pages report arrives as {"event":"page","page":id,"data":...}
// lines in between. Chromium is Debian's /usr/bin/chromium, driven by
// playwright-core (which never downloads a browser), headless, with a fresh
// profile. Commands:
//   launch {args}                 start Chromium (extra flags in args)
//   serve  {dir, host, port}      serve dir over HTTP -> {url}
//   open   {page, url}            open a tab; window.report(data) in it emits events
//   eval   {page, expr}           evaluate expr in the tab -> its JSON value
//   screenshot {page, path}       PNG of the tab
//   close  {page}                 close a tab (pagehide runs)
//   fetch  {url, method, headers, body}   an HTTP request from node -> {status, headers, body}
//   quit                          close everything and exit
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const baseArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let browser;
let context;
const pages = new Map();
const servers = [];

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml" };

function serve({ dir, host, port }) {
  return new Promise((resolve, reject) => {
    const srv = createServer(async (req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
      try {
        const body = await readFile(join(dir, path === "/" ? "index.html" : path));
        res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream", "cache-control": "no-store" });
        res.end(body);
      } catch {
        res.writeHead(404).end("not found");
      }
    });
    srv.on("error", reject);
    srv.listen(port ?? 0, host, () => {
      servers.push(srv);
      resolve({ url: `http://${host}:${srv.address().port}` });
    });
  });
}

const commands = {
  async launch({ args }) {
    args ??= [];
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: [...baseArgs, ...args] });
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
    await context.exposeFunction("report", (pageId, data) => out({ event: "page", page: pageId, data }));
    return { version: browser.version() };
  },
  serve,
  async open({ page: id, url }) {
    const page = await context.newPage();
    pages.set(id, page);
    page.on("console", (m) => out({ event: "console", page: id, type: m.type(), text: m.text() }));
    page.on("pageerror", (e) => out({ event: "pageerror", page: id, text: String(e) }));
    await page.addInitScript((pid) => {
      window.pageId = pid;
    }, id);
    await page.goto(url);
    return {};
  },
  async eval({ page: id, expr }) {
    return await pages.get(id).evaluate(expr);
  },
  async screenshot({ page: id, path }) {
    await pages.get(id).screenshot({ path, fullPage: true });
    return {};
  },
  async close({ page: id }) {
    const page = pages.get(id);
    pages.delete(id);
    await page?.close({ runBeforeUnload: true });
    return {};
  },
  async fetch({ url, method = "GET", headers = {}, body }) {
    const res = await fetch(url, { method, headers, body });
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
  },
  async quit() {
    await browser?.close();
    for (const s of servers) s.close();
    setImmediate(() => process.exit(0));
    return {};
  },
};

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
    const f = commands[cmd.op];
    if (!f) throw new Error(`unknown op ${cmd.op}`);
    out({ reply: cmd.id, result: (await f(cmd)) ?? null });
  } catch (e) {
    out({ reply: cmd?.id ?? 0, error: String(e?.stack ?? e) });
  }
});
rl.on("close", async () => {
  await browser?.close().catch(() => {});
  process.exit(0);
});
