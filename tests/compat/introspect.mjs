// An OAuth resource server asking our verifier about tokens the RFC 7662 way, with node
// openid-client 6: client_secret_basic credentials, a form body, the standard answer.
// Usage: node introspect.mjs INTROSPECTION_URL CLIENT_ID CLIENT_SECRET TOKENS_JSON_FILE
//   TOKENS_JSON_FILE holds {"<name>": "<token>", ...}
// Prints {"<name>": <introspection answer> | {"error": "<code>: <message>", "status": N}}.
import * as client from 'openid-client';
import { readFileSync } from 'node:fs';

const [endpoint, clientId, clientSecret, tokensFile] = process.argv.slice(2);
// no discovery: the verifier is not an authorization server; its one endpoint is configured
const config = new client.Configuration(
  { issuer: new URL(endpoint).origin, introspection_endpoint: endpoint },
  clientId,
  undefined,
  client.ClientSecretBasic(clientSecret),
);
// the test verifier is plain http on 127.0.0.1; production ones are https
client.allowInsecureRequests(config);
const tokens = JSON.parse(readFileSync(tokensFile, 'utf8'));
const answers = {};
for (const [name, token] of Object.entries(tokens)) {
  try {
    answers[name] = await client.tokenIntrospection(config, token);
  } catch (err) {
    answers[name] = { error: `${err.code ?? err.name}: ${err.message}`, status: err.status };
  }
}
process.stdout.write(JSON.stringify(answers) + '\n');
