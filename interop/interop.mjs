// Interoperability check: openid-client (a client library this project did
// not write) performs SMART Backend Services against a running smart_auth:
// client_credentials with private_key_jwt, introspection and revocation.
// The Go test interop_test.go starts the server and runs this script with:
//   ISSUER     the authorization server's issuer URL
//   CLIENT_ID  the backend client
//   KEY_PEM    the client's private key, PKCS #8 PEM (RSA or P-384)
//   KID        the key's kid in the client's registered JWKS
//   ALG        RS384 or ES384
//   SCOPE      the scope to ask for
// It prints one JSON line with what it saw.
import { webcrypto } from 'node:crypto';

// Node 18 (Debian bookworm's nodejs) has Web Crypto but not as globals;
// openid-client expects them. Set them before the library loads.
globalThis.crypto ??= webcrypto;
globalThis.CryptoKey ??= Object.getPrototypeOf(
  await webcrypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']),
).constructor;
const client = await import('openid-client');

const { ISSUER, CLIENT_ID, KEY_PEM, KID, ALG, SCOPE } = process.env;

const der = Buffer.from(KEY_PEM.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
const algorithm = ALG === 'ES384'
  ? { name: 'ECDSA', namedCurve: 'P-384' }
  : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' };
const key = await crypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);

// SMART requires the assertion's aud to be the token endpoint URL;
// openid-client defaults to the issuer, so set it once discovery told us.
let tokenEndpoint;
const auth = client.PrivateKeyJwt({ key, kid: KID }, {
  [client.modifyAssertion]: (header, payload) => {
    header.typ = 'JWT';
    payload.aud = tokenEndpoint;
  },
});

// Plain http is only for the loopback test server.
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, auth, {
  execute: [client.allowInsecureRequests],
});
tokenEndpoint = config.serverMetadata().token_endpoint;

const token = await client.clientCredentialsGrant(config, { scope: SCOPE });
const introspection = await client.tokenIntrospection(config, token.access_token);
await client.tokenRevocation(config, token.access_token);
const afterRevocation = await client.tokenIntrospection(config, token.access_token);

console.log(JSON.stringify({
  token_type: token.token_type,
  scope: token.scope,
  expires_in: token.expires_in,
  refresh_token: token.refresh_token ?? null,
  introspection,
  after_revocation: afterRevocation,
}));
