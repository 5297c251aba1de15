'use strict';
// The package as npm publishes it: `npm pack`, then `npm install` of the tarball in an empty
// folder (offline: it has no dependency to fetch), then require, import and the types from
// there, and one real verification with the installed copy.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { services } = require('./helpers');

const PACKAGE = path.resolve(__dirname, '..');
const TSC = path.join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc');
const TYPES = path.join(PACKAGE, 'node_modules', '@types');

function scratch() {
  const folder = process.env.JWT_AUTH_SCRATCH;
  assert.ok(folder, 'JWT_AUTH_SCRATCH: pytest gives this file an empty folder');
  return folder;
}

function run(command, args, cwd, env = {}) {
  return execFileSync(command, args, {
    cwd, encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_UPDATE_NOTIFIER: '1', ...env },
  });
}

// the version the package says it is: the tarball and the installed copy must say the same
const { version: VERSION } = require('../package.json');

let packed;
let consumer;

test.before(() => {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', scratch()],
    PACKAGE));
  packed = info;
  consumer = path.join(scratch(), 'consumer');
  fs.mkdirSync(consumer);
  fs.writeFileSync(path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  run('npm', ['install', '--offline', '--no-audit', '--no-fund',
    path.join(scratch(), packed.filename)], consumer);
});

test('the tarball holds the package and nothing else', () => {
  assert.equal(packed.name, 'jwt-auth-client');
  assert.equal(packed.version, VERSION);
  const files = packed.files.map((file) => file.path).sort();
  for (const wanted of ['package.json', 'index.js', 'index.mjs', 'index.d.ts', 'index.d.mts',
    'lib/errors.js', 'lib/transport.js', 'lib/clients.js', 'lib/express.js', 'lib/fastify.js',
    'README.md',
    'CHANGELOG.md', 'LICENSE']) {
    assert.ok(files.includes(wanted), `${wanted} is missing from ${files}`);
  }
  assert.deepEqual(files.filter((file) => /^(test|node_modules)\/|tsconfig|lock/.test(file)), []);
});

test('installed: no dependency came with it', () => {
  const installed = fs.readdirSync(path.join(consumer, 'node_modules'))
    .filter((name) => !name.startsWith('.'));
  assert.deepEqual(installed, ['jwt-auth-client']);
  const manifest = JSON.parse(fs.readFileSync(
    path.join(consumer, 'node_modules', 'jwt-auth-client', 'package.json'), 'utf8'));
  assert.equal(manifest.dependencies, undefined);
  assert.equal(manifest.license, 'Apache-2.0');
  assert.equal(manifest.engines.node, '>=20');
});

test('installed: require() verifies a real token', () => {
  const script = `
    const { VerifierClient, TokenExpired, JwtAuthError } = require('jwt-auth-client');
    const { version } = require('jwt-auth-client/package.json');
    (async () => {
      const client = new VerifierClient(process.env.JWT_AUTH_VERIFIER_URL);
      const identity = await client.verify(process.env.GOOD);
      const refused = await client.verify(process.env.EXPIRED).catch((e) => e);
      console.log(JSON.stringify({ version, userId: identity.userId,
        expired: refused instanceof TokenExpired && refused instanceof JwtAuthError }));
    })().catch((error) => { console.error(error); process.exitCode = 1; });`;
  const out = JSON.parse(run('node', ['-e', script], consumer,
    { GOOD: services.tokens.good, EXPIRED: services.tokens.token_expired }));
  assert.deepEqual(out, { version: VERSION, userId: 'node-user', expired: true });
});

test('installed: import works, and shares its classes with require()', () => {
  const script = `
    import { VerifierClient, TokenExpired, requireToken } from 'jwt-auth-client';
    import client from 'jwt-auth-client';
    import { createRequire } from 'node:module';
    const required = createRequire(import.meta.url)('jwt-auth-client');
    const refused = await new VerifierClient(process.env.JWT_AUTH_VERIFIER_URL)
      .verify(process.env.EXPIRED).catch((e) => e);
    console.log(JSON.stringify({
      same: TokenExpired === required.TokenExpired && client.VerifierClient === VerifierClient,
      expired: refused instanceof required.TokenExpired,
      middleware: typeof requireToken({ verifierUrl: 'http://127.0.0.1:1' }),
    }));`;
  const out = JSON.parse(run('node', ['--input-type=module', '-e', script], consumer,
    { EXPIRED: services.tokens.token_expired }));
  assert.deepEqual(out, { same: true, expired: true, middleware: 'function' });
});

test('installed: the types check from TypeScript, as CommonJS and as an ES module', () => {
  fs.writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022',
      strict: true, noEmit: true, typeRoots: [TYPES], types: ['node'] },
    files: ['use.cts', 'use.mts'],
  }));
  const use = `
    const client = new VerifierClient('http://127.0.0.1:8002', { timeoutMs: 2000 });
    async function check(token: string): Promise<string> {
      try {
        const identity = await client.verify(token, { requestId: 'abc' });
        return identity.userId;
      } catch (error) {
        if (error instanceof TokenExpired) return error.code + error.status + error.requestId;
        throw error;
      }
    }
    const issuer = new IssuerClient('http://127.0.0.1:8001', { apiKey: 'k' });
    issuer.issue('123', { isAdmin: true, expiresIn: 60 }).then((t) => t.token.length);
    void check;`;
  // the same import in both: TypeScript resolves the .cts one through the package's "require"
  // condition (index.d.ts), the .mts one through "import" (index.d.mts)
  const head = "import { VerifierClient, IssuerClient, TokenExpired } from 'jwt-auth-client';\n";
  fs.writeFileSync(path.join(consumer, 'use.cts'), head + use);
  fs.writeFileSync(path.join(consumer, 'use.mts'), head + use);
  // a type error would make tsc exit non-zero (its errors on stdout)
  try {
    run('node', [TSC, '-p', '.'], consumer);
  } catch (error) {
    assert.fail(`tsc: ${error.stdout}${error.stderr}`);
  }
  // and a wrong use is caught: the types are really read, not `any`
  fs.writeFileSync(path.join(consumer, 'use.mts'),
    "import { VerifierClient } from 'jwt-auth-client';\n"
    + "new VerifierClient('http://127.0.0.1').verify(42);\n");
  assert.throws(() => run('node', [TSC, '-p', '.'], consumer),
    (error) => /use\.mts.*TS2345/.test(error.stdout));
});
