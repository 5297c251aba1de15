// The seed's "Issuing tokens" snippet as written, run in the folder that holds private.pem (the
// seed's "well known location"). Only two things come from outside: the passphrase (environment
// SEED_PASSPHRASE instead of 'your-passphrase') and, optionally, a JSON payload in argv[2]
// instead of the seed's, so tests can also make tokens with exp or other claims.
// Usage (cwd = key folder): SEED_PASSPHRASE=... node /path/to/seed_snippet.js ['{"userId":"1"}']
const jwt = require('jsonwebtoken');
const fs = require('fs');
const key = fs.readFileSync('private.pem');

const payload = process.argv[2] ? JSON.parse(process.argv[2]) : {
  userId: '123',
  isAdmin: true // optional
  // other properties (ignored by Realm Object Server)
};

const token = jwt.sign(payload, { key:  key, passphrase: process.env.SEED_PASSPHRASE }, { algorithm: 'RS256'});
// Send token to your client app
process.stdout.write(token + '\n');
