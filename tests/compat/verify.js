// Verifies a token the way the reference server (ROS JwtAuthProvider) did:
// jwt.verify(token, publicPem, {algorithms: ['RS256']}).
// Usage: node verify.js TOKEN_FILE PUBLIC_PEM_FILE
// Prints the payload as JSON; on failure prints the error's name and message and exits 1.
const jwt = require('jsonwebtoken');
const fs = require('fs');

const token = fs.readFileSync(process.argv[2], 'utf8').trim();
const publicPem = fs.readFileSync(process.argv[3], 'utf8');
try {
  const payload = jwt.verify(token, publicPem, { algorithms: ['RS256'] });
  const header = jwt.decode(token, { complete: true }).header;
  process.stdout.write(JSON.stringify({ header, payload }) + '\n');
} catch (err) {
  process.stderr.write(`${err.name}: ${err.message}\n`);
  process.exit(1);
}
