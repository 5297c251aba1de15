// The seed's "Issuing tokens" snippet, verbatim except where the key file and passphrase come
// from (argv instead of 'private.pem' and 'your-passphrase').
// Usage: node seed_sign.js PRIVATE_PEM_FILE PASSPHRASE_FILE
const jwt = require('jsonwebtoken');
const fs = require('fs');
const key = fs.readFileSync(process.argv[2]);
const passphrase = fs.readFileSync(process.argv[3], 'utf8').replace(/\r?\n$/, '');

const payload = {
  userId: '123',
  isAdmin: true // optional
  // other properties (ignored by Realm Object Server)
};

const token = jwt.sign(payload, { key:  key, passphrase: passphrase }, { algorithm: 'RS256'});
// Send token to your client app
process.stdout.write(token + '\n');
