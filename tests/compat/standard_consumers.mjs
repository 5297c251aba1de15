// What a node resource server does with an OIDC / OAuth issuer it is pointed at: openid-client 6
// discovers it, jose 6 fetches the discovered jwks_uri (createRemoteJWKSet) and verifies each
// token with jwtVerify, expecting the discovered issuer and only the advertised algorithms.
// Usage: node standard_consumers.mjs ISSUER_URL oidc|oauth2 TOKENS_JSON_FILE
//   TOKENS_JSON_FILE holds {"<name>": "<token>", ...}
// Prints {"metadata": {...}, "verified": {"<name>": {"header", "payload"} | {"error"}}};
// a failed discovery prints "<code>: <message>" on stderr and exits 1.
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { readFileSync } from 'node:fs';

const [issuerUrl, algorithm, tokensFile] = process.argv.slice(2);
let config;
try {
  config = await client.discovery(new URL(issuerUrl), 'jwt-auth-compat', undefined, undefined, {
    algorithm,
    // our test issuer is plain http on 127.0.0.1; production issuers are https
    execute: [client.allowInsecureRequests],
    timeout: 10,
  });
} catch (err) {
  process.stderr.write(`${err.code ?? err.name}: ${err.message}\n`);
  process.exit(1);
}
const metadata = config.serverMetadata();
const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri), { timeoutDuration: 10000 });
const tokens = JSON.parse(readFileSync(tokensFile, 'utf8'));
const verified = {};
for (const [name, token] of Object.entries(tokens)) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: metadata.issuer,
      algorithms: metadata.id_token_signing_alg_values_supported,
    });
    verified[name] = { header: protectedHeader, payload };
  } catch (err) {
    verified[name] = { error: `${err.code ?? err.name}: ${err.message}` };
  }
}
process.stdout.write(JSON.stringify({ metadata, verified }) + '\n');
