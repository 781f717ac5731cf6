#!/usr/bin/env node
// Serves MediaPipe's npm hands solution, the driver page and the test images from local folders
// and opens the page in headless Chromium; the page posts its results back, which are written
// to --out. No npm packages: Node's http module and Chromium's command line are enough, so the
// check needs nothing from the registry beyond the solution tarball itself.
// Usage: run_chromium.js --chromium BIN --solution DIR --work DIR --profile DIR --out FILE [--timeout S]
// (--profile: an empty folder for Chromium's user data; the caller removes it afterwards)
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

function parseArgs(argv) {
  const a = { timeout: 300 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (i + 1 >= argv.length) throw new Error(`--${k} needs a value`);
    a[k] = argv[i + 1];
  }
  for (const k of ['chromium', 'solution', 'work', 'profile', 'out'])
    if (!a[k]) throw new Error(`--${k} is required`);
  a.timeout = Number(a.timeout);
  if (!Number.isFinite(a.timeout) || a.timeout <= 0) throw new Error('--timeout must be a positive number of seconds');
  return a;
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.png': 'image/png', '.jpg': 'image/jpeg' };

function main() {
  const args = parseArgs(process.argv);
  const roots = { '/page/': __dirname, '/solution/': args.solution, '/work/': args.work };
  let chrome = null;
  let done = false;
  const finish = (code, msg) => {
    if (done) return;
    done = true;
    if (msg) process.stderr.write(msg + '\n');
    // Chromium's own process group: the browser and the renderer and GPU processes it started.
    if (chrome && chrome.exitCode === null) {
      try { process.kill(-chrome.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
    }
    server.close();
    process.exitCode = code;
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'POST') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        res.end('ok');
        if (url.pathname === '/log') process.stderr.write(`page: ${body}\n`);
        else if (url.pathname === '/result') {
          fs.writeFileSync(args.out, body);
          finish(0);
        } else if (url.pathname === '/error') finish(1, `page failed: ${body}`);
      });
      return;
    }
    const root = Object.keys(roots).find((p) => url.pathname.startsWith(p));
    const file = root && path.resolve(roots[root], '.' + decodeURIComponent(url.pathname.slice(root.length - 1)));
    if (!file || !file.startsWith(path.resolve(roots[root])) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });

  server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    // WebGL is required by the solution's GPU graph (image scaling and crops); SwiftShader
    // gives it without a GPU.
    chrome = spawn(args.chromium, [
      '--headless=new', '--no-sandbox', '--no-first-run', '--no-default-browser-check',
      '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
      `--user-data-dir=${args.profile}`, `http://127.0.0.1:${port}/page/driver.html`,
    ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let chromeErr = '';
    chrome.stderr.on('data', (d) => { chromeErr = (chromeErr + d).slice(-4000); });
    chrome.on('exit', (code) => finish(1, `chromium exited (${code}) before the page posted its results:\n${chromeErr}`));
    setTimeout(() => finish(1, `no results from the page after ${args.timeout} s:\n${chromeErr}`),
      args.timeout * 1000).unref();
  });
}

try {
  main();
} catch (e) {
  process.stderr.write(`run_chromium: ${e.message}\n`);
  process.exitCode = 2;
}
