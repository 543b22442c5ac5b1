// A second, independent OpenID Provider for smart_auth's browser test of
// sign-in through an identity provider: the certified Node package
// oidc-provider (pinned in package-lock.json), with its development
// sign-in and consent pages. integration/idp_browser_test.go starts it.
//
// Environment: PORT (on 127.0.0.1), CLIENT_ID, CLIENT_SECRET, REDIRECT_URI
// and POST_LOGOUT_URI (smart_auth's client). It prints "ready <issuer>"
// once it listens, and stops on SIGTERM.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

// The hospital's staff: any password signs in (development pages); the
// account id is what is typed as the login.
const accounts = {
  nora: {
    sub: 'nora',
    name: 'Nora Practitioner',
    preferred_username: 'nora',
    fhirUser: 'Practitioner/np-7',
    groups: ['smart-users'],
  },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: [process.env.POST_LOGOUT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    fhirUser: ['fhirUser'],
    groups: ['groups'],
  },
  // The claims the scopes ask for go into the id_token, as hospitals
  // configure their providers for relying parties that read it.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: ['smartauth-browser-test-cookie-key'] },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return account; } };
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
