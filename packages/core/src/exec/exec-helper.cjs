// The exec helper (see spawner.ts): plain CommonJS, run by node without a TypeScript loader and
// with nothing of the service's memory. Messages: {op:'run', id, req} in; {op:'message', id, message}
// (+ handle) and {op:'done', id, out} back.
'use strict';
const { spawn } = require('node:child_process');
const group = (pid, sig) => { try { process.kill(-pid, sig); } catch {} };
process.on('disconnect', () => process.exit(0));
process.on('message', ({ op, id, req }) => {
  if (op !== 'run') return;
  const reply = (out) => process.send({ op: 'done', id, out });
  let child;
  try {
    child = spawn(req.file, req.args, { shell: false, detached: true, cwd: req.cwd, env: req.env,
      stdio: [req.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...(req.ipc ? ['ipc'] : [])] });
  } catch (e) {
    return reply({ code: null, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), spawnError: e.message });
  }
  if (req.ipc) child.on('message', (message, handle) => {
    process.send({ op: 'message', id, message }, handle, () => { if (handle && handle.close) handle.close(); });
  });
  const stdout = []; let stdoutBytes = 0; const stderr = []; let stderrBytes = 0;
  let failure, killTimer, settled = false;
  const terminate = (why) => {
    if (failure) return;
    failure = why;
    group(child.pid, 'SIGTERM');
    killTimer = setTimeout(() => group(child.pid, 'SIGKILL'), req.killGraceMs);
  };
  const timer = setTimeout(() => terminate('timeout'), req.timeoutMs);
  child.stdout.on('data', (c) => {
    if (failure) return;
    stdoutBytes += c.length;
    if (stdoutBytes > req.maxOutputBytes) terminate('output_limit'); else stdout.push(c);
  });
  child.stderr.on('data', (c) => {
    stderr.push(c); stderrBytes += c.length;
    while (stderrBytes - stderr[0].length >= req.maxOutputBytes) stderrBytes -= stderr.shift().length;
  });
  // A program may exit without reading its input: that is its exit status's business.
  if (child.stdin) { child.stdin.on('error', () => {}); child.stdin.end(req.input); }
  const finish = (code, signal, spawnError) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer); clearTimeout(killTimer);
    reply({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), failure, spawnError });
  };
  child.on('error', (e) => finish(null, null, e.message));
  child.on('close', (code, signal) => finish(code, signal));
});
