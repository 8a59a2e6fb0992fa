/**
 * Installed from an npm registry, as users do (issue #30). A throw-away Verdaccio on a loopback
 * port (its own storage and config; third-party packages proxied from registry.npmjs.org) gets
 * every workspace package through `pnpm publish -r` (which rewrites `workspace:*` and applies
 * `publishConfig`); then, in empty folders outside the repository, plain `npm install` of
 *   - @dif-fusion/fuser, and `npx dif-fuse` on a pair (no onnxruntime-node flag anywhere: the
 *     install must neither fail on nor download the CUDA libraries),
 *   - @dif-fusion/trainer, and `npx dif-train --help`,
 *   - @dif-fusion/io + @dif-fusion/metrics alone (no ONNX Runtime, no tfjs, no server),
 * and each package README's first ```js snippet, as written, with plain `node`.
 * Skipped, saying why, when Verdaccio cannot start (e.g. no network for the npm registry).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_DIR, REPO, tmp, writeTestImage } from './helpers';

const work = tmp('dif-registry-');
const log: string[] = [];
let server: ChildProcess | undefined;
let registry = '';
let skipReason = '';

const workspaceDirs = ['packages', 'apps'].flatMap((d) =>
  readdirSync(join(REPO, d))
    .map((n) => join(d, n))
    .filter((p) => existsSync(join(REPO, p, 'package.json'))),
);
const nameOf = (dir: string): string =>
  JSON.parse(readFileSync(join(REPO, dir, 'package.json'), 'utf8')).name;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** Kills the registry; also on an abrupt exit of the test process. */
function stopServer(): void {
  if (server && server.exitCode === null) server.kill('SIGKILL');
}
process.once('exit', stopServer);

/** A clean environment for npm/pnpm: nothing inherited from the pnpm running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(npm_|pnpm_|ONNXRUNTIME_NODE_INSTALL)/i.test(k)) env[k] = v;
  return {
    ...env,
    npm_config_userconfig: join(work, 'npmrc'),
    npm_config_registry: registry,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_prefer_online: 'true',
    DIF_FUSION_DEBUG: '',
    ...extra,
  };
}

interface Ran {
  code: number | null;
  out: string;
  seconds: number;
}

/**
 * Runs a command to its end or `timeoutS` (then killed, code null). Asynchronous, so the test
 * worker keeps answering vitest while npm works for minutes.
 */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  timeoutS: number,
  extra: Record<string, string> = {},
): Promise<Ran> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      env: cleanEnv(extra),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    const timer = setTimeout(() => {
      out += `\n(killed after ${timeoutS} s)`;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    const done = (code: number | null, error?: Error) => {
      clearTimeout(timer);
      const seconds = (Date.now() - t0) / 1000;
      log.push(`$ ${cmd} ${args.join(' ')}  (${cwd}, ${seconds.toFixed(1)} s, exit ${code})`);
      resolve({ code, out: error ? `${out}\n${error.message}` : out, seconds });
    };
    child.once('error', (e) => done(null, e));
    child.once('close', (code) => done(code));
  });
}

/** An empty npm project outside the repository. */
function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
  );
  return dir;
}

/**
 * The three installs the tests check, started together once everything is published: each
 * into its own empty project (installed separately, as a user would), side by side (npm's
 * cache is safe to share; they mostly wait on the network). A fourth warms the registry and
 * npm's cache for @dif-fusion/charts, whose README snippet installs it into libs-app later.
 */
const installs: Partial<Record<'fuser' | 'trainer' | 'libs' | 'charts', Promise<Ran>>> = {};
function startInstalls(): void {
  const start = (dir: string, pkgs: string[]) =>
    run('npm', ['install', '--no-progress', ...pkgs], project(dir), 420);
  installs.fuser = start('fuser-app', ['@dif-fusion/fuser']);
  installs.trainer = start('trainer-app', ['@dif-fusion/trainer']);
  installs.libs = start('libs-app', ['@dif-fusion/io', '@dif-fusion/metrics']);
  installs.charts = start('charts-warm', ['@dif-fusion/charts']);
}

/** The result of a started install (see {@link startInstalls}), which must have succeeded. */
async function installed(which: keyof typeof installs, pkgs: string[]): Promise<Ran> {
  const r = await installs[which]!;
  expect(r.code, `npm install ${pkgs.join(' ')}\n${r.out}`).toBe(0);
  return r;
}

async function npmInstall(dir: string, pkgs: string[]): Promise<Ran> {
  const r = await run('npm', ['install', '--no-progress', ...pkgs], dir, 420);
  expect(r.code, `npm install ${pkgs.join(' ')}\n${r.out}`).toBe(0);
  return r;
}

function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]);
}

/** The first ```js block of a README, and the packages its `// npm i ...` line installs. */
export function firstSnippet(readme: string): { code: string; install: string[] } | undefined {
  const m = /^```js\n([\s\S]*?)^```/m.exec(readme);
  if (!m) return undefined;
  const line = /^\/\/ npm i ((?:\S+ )*\S+)/.exec(m[1]);
  return { code: m[1], install: line ? line[1].split(' ') : [] };
}

beforeAll(async () => {
  const require = createRequire(join(APP_DIR, 'package.json'));
  let bin: string;
  try {
    const pj = require.resolve('verdaccio/package.json');
    const pkg = JSON.parse(readFileSync(pj, 'utf8'));
    bin = join(pj, '..', typeof pkg.bin === 'string' ? pkg.bin : pkg.bin.verdaccio);
  } catch {
    skipReason = 'verdaccio is not installed (devDependency of @dif-fusion/fuser)';
    return;
  }
  const port = await freePort();
  registry = `http://127.0.0.1:${port}/`;
  const storage = join(work, 'storage');
  writeFileSync(
    join(work, 'verdaccio.yaml'),
    [
      `storage: ${storage}`,
      'auth:',
      `  htpasswd: { file: ${join(work, 'htpasswd')}, max_users: 10 }`,
      'uplinks:',
      // maxage: a third-party package's metadata, fetched once, is served from this run's
      // storage to the later installs (the default, 2m, asks npmjs again for each).
      '  npmjs: { url: https://registry.npmjs.org/, timeout: 60s, max_fails: 5, maxage: 60m }',
      'packages:',
      "  '@dif-fusion/*': { access: $all, publish: $authenticated }",
      "  '**': { access: $all, publish: $authenticated, proxy: npmjs }",
      'max_body_size: 200mb',
      'log: { type: stdout, format: pretty, level: error }',
      '',
    ].join('\n'),
  );
  server = spawn(
    process.execPath,
    [bin, '--config', join(work, 'verdaccio.yaml'), '--listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  let serverOut = '';
  server.stdout?.on('data', (b) => (serverOut += b));
  server.stderr?.on('data', (b) => (serverOut += b));
  const deadline = Date.now() + 60_000;
  let up = false;
  while (!up && Date.now() < deadline && server.exitCode === null) {
    up = await fetch(`${registry}-/ping`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (!up) await new Promise((r) => setTimeout(r, 500));
  }
  if (!up) {
    stopServer();
    skipReason = `verdaccio did not start on ${registry} within 60 s: ${serverOut.trim().split('\n').slice(-3).join(' | ')}`;
    return;
  }
  // Third-party packages come through the uplink: without the npm registry nothing installs.
  let upstreamWhy = '';
  const upstream = await fetch(`${registry}is-number`, { signal: AbortSignal.timeout(60_000) })
    .then((r) => {
      upstreamWhy = `HTTP ${r.status}`;
      return r.ok;
    })
    .catch((e) => {
      upstreamWhy = String(e?.cause?.code ?? e?.message ?? e);
      return false;
    });
  if (!upstream) {
    stopServer();
    skipReason = `verdaccio cannot reach registry.npmjs.org for third-party packages (${upstreamWhy}): ${serverOut.trim().split('\n').slice(-3).join(' | ')}`;
    return;
  }
  const user = await fetch(`${registry}-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'throw-away-ci' }),
    signal: AbortSignal.timeout(10_000),
  }).then((r) => r.json() as Promise<{ token?: string }>);
  const host = registry.replace(/^http:/, '');
  writeFileSync(join(work, 'npmrc'), `registry=${registry}\n${host}:_authToken=${user.token}\n`);
  // pnpm: the one running these tests, or the one the README's commands fetch.
  const pnpm = /pnpm/.test(process.env.npm_execpath ?? '')
    ? [process.execPath, process.env.npm_execpath!]
    : ['npx', '-y', 'pnpm@10'];
  const pub = await run(
    pnpm[0],
    [...pnpm.slice(1), 'publish', '-r', '--registry', registry, '--no-git-checks'],
    REPO,
    420,
  );
  expect(pub.code, pub.out).toBe(0);
  startInstalls();
}, 600_000);

afterAll(() => {
  stopServer();
  console.log(`registry test:\n${log.join('\n')}`);
  rmSync(work, { recursive: true, force: true });
});

/** Marks a test skipped, saying why, when the registry is not there. */
function needsRegistry(ctx: { skip: (note?: string) => void }): void {
  if (skipReason) {
    console.warn(`skipped: ${skipReason}`);
    ctx.skip(skipReason);
  }
}

describe('published to a registry, installed with plain npm', () => {
  it('every workspace package is in the registry, workspace:* rewritten to versions', async (ctx) => {
    needsRegistry(ctx);
    const views = await Promise.all(
      workspaceDirs.map((dir) =>
        run('npm', ['view', nameOf(dir), 'version', 'dependencies', '--json'], work, 60),
      ),
    );
    for (const [i, dir] of workspaceDirs.entries()) {
      const name = nameOf(dir);
      const view = views[i];
      expect(view.code, view.out).toBe(0);
      const doc = JSON.parse(view.out) as {
        version: string;
        dependencies?: Record<string, string>;
      };
      const version = JSON.parse(readFileSync(join(REPO, dir, 'package.json'), 'utf8')).version;
      expect(doc.version, name).toBe(version);
      for (const [dep, range] of Object.entries(doc.dependencies ?? {}))
        expect(range, `${name} -> ${dep}`).not.toMatch(/^workspace:/);
    }
  });

  it('npm install @dif-fusion/fuser: no CUDA download, no tfjs, no server; npx dif-fuse fuses a pair', async (ctx) => {
    needsRegistry(ctx);
    const dir = join(work, 'fuser-app');
    const inst = await installed('fuser', ['@dif-fusion/fuser']);
    expect(inst.out).not.toMatch(/nuget|EBADENGINE/i);
    const nm = join(dir, 'node_modules');
    for (const absent of [
      '@tensorflow',
      '@dif-fusion/tfjs',
      '@dif-fusion/trainer',
      'fastify',
      'bullmq',
      'ioredis',
    ])
      expect(existsSync(join(nm, absent)), absent).toBe(false);
    // onnxruntime-node's CPU binary is there, its CUDA provider is not.
    const ortBin = join(nm, 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch);
    expect(existsSync(join(ortBin, 'onnxruntime_binding.node'))).toBe(true);
    const cuda = join(ortBin, 'libonnxruntime_providers_cuda.so');
    if (process.platform === 'linux' && existsSync(cuda)) expect(statSync(cuda).size).toBe(0);
    log.push(
      `fuser-app node_modules: ${(duBytes(nm) / 1e6).toFixed(0)} MB, install ${inst.seconds.toFixed(0)} s`,
    );

    await writeTestImage(join(dir, 'ir.png'), 120, 88, 1, 3);
    await writeTestImage(join(dir, 'vi.png'), 120, 88, 3, 4);
    const fuse = await run(
      'npx',
      [
        'dif-fuse',
        '--ir',
        'ir.png',
        '--vis',
        'vi.png',
        '-o',
        'fused.png',
        '--side-by-side',
        'sbs.png',
      ],
      dir,
      300,
    );
    expect(fuse.code, fuse.out).toBe(0);
    expect(fuse.out).toMatch(/provider cpu/);
    expect(fuse.out).toContain(join(nm, '@dif-fusion', 'fuser', 'models', 'default'));
    const meta = await sharp(join(dir, 'fused.png')).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([120, 88, 3]);
    const sbs = await sharp(join(dir, 'sbs.png')).metadata();
    expect(sbs.width).toBeGreaterThanOrEqual(3 * 120);

    const help = await run('npx', ['dif-fuse', '--help'], dir, 60);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/Usage: dif-fuse/);
    // the server's dependencies are optional: a clear line naming what to install
    const serve = await run('npx', ['dif-fuse', 'serve', '--port', '0'], dir, 60);
    expect(serve.code).toBe(1);
    expect(serve.out).toMatch(
      /^error: dif-fuse serve needs fastify and @fastify\/multipart.*npm i fastify@5 @fastify\/multipart@10$/m,
    );
  }, 900_000);

  it('npm install @dif-fusion/trainer: npx dif-train --help', async (ctx) => {
    needsRegistry(ctx);
    const dir = join(work, 'trainer-app');
    const inst = await installed('trainer', ['@dif-fusion/trainer']);
    log.push(
      `trainer-app node_modules: ${(duBytes(join(dir, 'node_modules')) / 1e6).toFixed(0)} MB, install ${inst.seconds.toFixed(0)} s`,
    );
    const help = await run('npx', ['dif-train', '--help'], dir, 120);
    expect(help.code, help.out).toBe(0);
    expect(help.out).toMatch(/Usage: dif-train/);
    for (const cmd of ['ddpm', 'head', 'export', 'import-torch']) expect(help.out).toContain(cmd);
    const version = await run('npx', ['dif-train', '--version'], dir, 120);
    expect(version.out.trim()).toBe(
      JSON.parse(readFileSync(join(REPO, 'apps/trainer/package.json'), 'utf8')).version,
    );
  }, 900_000);

  it('library-only install (@dif-fusion/io @dif-fusion/metrics): no ONNX Runtime, tfjs or CLI', async (ctx) => {
    needsRegistry(ctx);
    const dir = join(work, 'libs-app');
    const inst = await installed('libs', ['@dif-fusion/io', '@dif-fusion/metrics']);
    const nm = join(dir, 'node_modules');
    log.push(
      `libs-app node_modules: ${(duBytes(nm) / 1e6).toFixed(0)} MB, install ${inst.seconds.toFixed(0)} s`,
    );
    for (const absent of ['onnxruntime-node', '@tensorflow', 'vega', '@dif-fusion/fuser'])
      expect(existsSync(join(nm, absent)), absent).toBe(false);
  }, 900_000);
});

/**
 * Where each README's snippet runs (the project of the install test whose packages it needs;
 * its own `// npm i ...` line is run there first, as written) and what its output must hold.
 */
const SNIPPETS: Record<string, { project: string; expect: RegExp }> = {
  '@dif-fusion/schedules': {
    project: 'libs-app',
    expect: /^898 0\.7573606931280329 0\.9999500640364433 \[ 0, 41, 82, 122 \]$/m,
  },
  '@dif-fusion/io': { project: 'libs-app', expect: /^Uint8Array\(6\) \[ 0, 0, 0, 32, 32, 32 \]$/m },
  '@dif-fusion/metrics': {
    project: 'libs-app',
    expect: /EN: 6\.0967075[\s\S]*DeltaE: 1\.65894989/,
  },
  '@dif-fusion/cli-kit': {
    project: 'libs-app',
    expect: /^1\n\{ ok: 0, failure: 1, usage: 2, interrupted: 130 \}$/m,
  },
  '@dif-fusion/charts': { project: 'libs-app', expect: /^loss\.png 524x528$/m },
  '@dif-fusion/onnx': { project: 'fuser-app', expect: /^cpu 18432$/m },
  '@dif-fusion/fuser': { project: 'fuser-app', expect: /^fused\.png 96x64 cpu$/m },
  '@dif-fusion/nn': { project: 'trainer-app', expect: /^\[\] 4\n\[ 8, 3, 3, 3 \]$/m },
  '@dif-fusion/tfjs': { project: 'trainer-app', expect: /^wasm\nFloat32Array\(1\) \[ 3 \]$/m },
  '@dif-fusion/unet': { project: 'trainer-app', expect: /^\[ 1, 32, 32, 4 \] 6 6 164$/m },
  '@dif-fusion/diffusion': {
    project: 'trainer-app',
    expect: /^loss \d\.\d{4} 3 \[ 1, 32, 32, 4 \]$/m,
  },
  '@dif-fusion/fusion-head': {
    project: 'trainer-app',
    expect: /^\[ 1, 32, 32, 3 \] \[ 2, 5, 8, 11, 14 \] \d/m,
  },
  '@dif-fusion/torch-import': {
    project: 'trainer-app',
    expect:
      /schedule: 'linear',\s+n_timestep: 2000,\s+linear_start: 0\.000001,\s+linear_end: 0\.01/,
  },
  '@dif-fusion/export': {
    project: 'trainer-app',
    expect: /^true \[ 1, 2 \] \[ 5 \] 3072$/m,
  },
  '@dif-fusion/train': { project: 'trainer-app', expect: /^8 \d\.\d+\nonnxruntime 124 cpu$/m },
  '@dif-fusion/trainer': {
    project: 'trainer-app',
    expect: /^ddpm 500 steps, lr 0\.0001, head 30 epochs$/m,
  },
};

describe('each package README opens with a snippet that runs in a fresh ESM project with plain node', () => {
  const readmes = workspaceDirs.map((d) => ({ dir: d, name: nameOf(d) }));

  it.for(readmes)('$name', ({ dir, name }) => {
    const snippet = firstSnippet(readFileSync(join(REPO, dir, 'README.md'), 'utf8'));
    expect(snippet, `${name}: README has no \`\`\`js block`).toBeDefined();
    expect(snippet!.install, `${name}: the snippet's first line is \`// npm i ...\``).toContain(
      name,
    );
    const where = SNIPPETS[name];
    expect(where, `${name}: expected output declared in this test`).toBeDefined();
  });

  it.for(readmes)('$name: runs', { timeout: 600_000 }, async ({ dir, name }, ctx) => {
    needsRegistry(ctx);
    const snippet = firstSnippet(readFileSync(join(REPO, dir, 'README.md'), 'utf8'))!;
    const where = SNIPPETS[name];
    const cwd = join(work, where.project);
    await Promise.all(Object.values(installs)); // the first installs (and the warm-up) are done
    expect(existsSync(join(cwd, 'node_modules')), `${where.project} was installed`).toBe(true);
    await npmInstall(cwd, snippet.install);
    const file = `${name.split('/')[1]}-demo.mjs`;
    writeFileSync(join(cwd, file), snippet.code);
    const r = await run(process.execPath, [file], cwd, 300);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(where.expect);
  });
});
