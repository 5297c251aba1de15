// The package required from CommonJS TypeScript (resolved through "require": index.d.ts).
import { VerifierClient, TokenExpired } from 'jwt-auth-client';
import type { Identity } from 'jwt-auth-client';

export async function who(token: string): Promise<string> {
  try {
    const identity: Identity = await new VerifierClient('http://127.0.0.1:8002').verify(token);
    return identity.userId;
  } catch (error) {
    if (error instanceof TokenExpired) return error.code;
    throw error;
  }
}
