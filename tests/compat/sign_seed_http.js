// The seed's "Issuing tokens" snippet for the verifier's HTTP compatibility test: the payload,
// the call and the options exactly as the seed has them; only the key file and passphrase come
// from argv instead of 'private.pem' and 'your-passphrase'.
// Usage: node sign_seed_http.js PRIVATE_PEM_FILE PASSPHRASE
const jwt = require('jsonwebtoken');
const fs = require('fs');
const key = fs.readFileSync(process.argv[2]);

const payload = {
  userId: '123',
  isAdmin: true // optional
  // other properties (ignored by Realm Object Server)
};

const token = jwt.sign(payload, { key:  key, passphrase: process.argv[3] }, { algorithm: 'RS256'});
// Send token to your client app
process.stdout.write(token + '\n');
