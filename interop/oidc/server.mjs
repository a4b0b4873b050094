// Runs the certified oidc-provider on loopback for oauthtransport's interop
// tests: a client-credentials client, a refresh-token client (rotation on),
// a resource server that introspects, revocation; clients that authenticate
// with private_key_jwt (public keys from OIDC_CLIENT_JWKS) and
// client_secret_jwt; clients whose tokens are DPoP-bound, with nonces
// required (one of them with DPoP-bound refresh tokens); resource indicators. With OIDC_TLS_CERT, OIDC_TLS_KEY and
// OIDC_TLS_CA (PEM files) it serves https, asks for client certificates,
// and has a tls_client_auth client (RFC 8705) whose tokens are bound to its
// certificate. For the grants a person authorizes (issue 21), a public
// native client (RFC 8252, no client authentication): the authorization
// code grant with PKCE (S256, required) through a loopback redirect on any
// port, with iss in the authorization response (RFC 9207), and the device
// grant (RFC 8628, interval 1 s); both issue refresh tokens, and the
// development login and consent pages (devInteractions) let a test approve
// as a person would. Usage:
//
//   OIDC_CLIENT_JWKS='{"keys":[...]}' node server.mjs <token lifetime in seconds>
//
// With OIDC_MCP_RESOURCE (the URL of a protected resource, such as an
// MCP server, that names this issuer in its RFC 9728 metadata), the
// variant the ProtectedResource tests run: open dynamic client
// registration (RFC 7591, at /reg); PKCE S256 required of every client;
// the resources at that resource's origin known to resource indicators
// (RFC 8707), with the scopes mcp:read and mcp:write and JWT access tokens
// (RFC 9068, aud the resource asked for) signed with the provider's keys
// (/jwks); two clients registered beforehand, for client credentials:
// mcp-cc-client (client_secret_basic) and mcp-pkjwt-client
// (private_key_jwt, with the OIDC_CLIENT_JWKS keys); and Client ID
// Metadata Documents (draft-02), fetched from loopback too (https: set
// NODE_EXTRA_CA_CERTS to trust their server).
//
// It prints "listening <port>" once ready. Three test-only routes:
// POST /test/refresh-token mints a refresh token for rt-client (or the
// client_id in the query: dpop-rt-client, whose tokens are DPoP-bound,
// with jkt the thumbprint of the key its refresh token is bound to), as
// an authorization-code grant would have; GET /test/stats counts token
// requests, and per grant type the successes, the failures, for the code
// grant the exchanges whose PKCE verifier matched an S256 challenge, and
// the successes by the resource (RFC 8707) they named ("" for none); and
// lists the clients registered dynamically (registrations) and the
// registration requests refused (registration_errors); POST
// /test/forget-client?client_id=... forgets a client registered
// dynamically, as a server restarted without them would.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const ttl = Number(process.argv[2] || 3);
const clientJWKS = JSON.parse(process.env.OIDC_CLIENT_JWKS || '{"keys":[]}');
const mcpResource = process.env.OIDC_MCP_RESOURCE || '';
const originOf = (u) => { try { return new URL(u).origin; } catch { return undefined; } };
const mcpOrigin = mcpResource ? originOf(mcpResource) : '';
let tokenCalls = 0;
const grants = {}; // grant_type -> { success, error, pkce_s256, resources: { resource -> successes } }
const registrations = []; // the clients registered dynamically, as registered
const registrationErrors = []; // the error codes and descriptions of refused registrations

const tls = process.env.OIDC_TLS_CERT ? {
  cert: fs.readFileSync(process.env.OIDC_TLS_CERT),
  key: fs.readFileSync(process.env.OIDC_TLS_KEY),
  ca: fs.readFileSync(process.env.OIDC_TLS_CA),
  requestCert: true,
  rejectUnauthorized: false, // certificateAuthorized decides, per client
} : undefined;
const server = tls ? https.createServer(tls) : http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

function peerCertificate(ctx) {
  if (typeof ctx.socket.getPeerCertificate !== 'function') return undefined;
  const cert = ctx.socket.getPeerCertificate(false);
  return cert && cert.raw ? new crypto.X509Certificate(cert.raw) : undefined;
}

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'cc-client', client_secret: 'cc-secret-value', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api' },
    { client_id: 'rt-client', client_secret: 'rt-secret-value', grant_types: ['authorization_code', 'refresh_token'], redirect_uris: ['http://127.0.0.1/cb'], response_types: ['code'] },
    { client_id: 'resource-server', client_secret: 'rs-secret-value', grant_types: [], redirect_uris: [], response_types: [] },
    {
      client_id: 'pkjwt-client', token_endpoint_auth_method: 'private_key_jwt', jwks: clientJWKS,
      grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api',
    },
    {
      client_id: 'csjwt-client', client_secret: 'csjwt-secret-value-long-enough-for-hs256', token_endpoint_auth_method: 'client_secret_jwt',
      grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api',
    },
    {
      client_id: 'mtls-client', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=payments-service',
      tls_client_certificate_bound_access_tokens: true,
      grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api',
    },
    {
      client_id: 'dpop-client', client_secret: 'dpop-secret-value', dpop_bound_access_tokens: true,
      grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api',
    },
    {
      client_id: 'dpop-rt-client', client_secret: 'dpop-rt-secret-value', dpop_bound_access_tokens: true,
      grant_types: ['authorization_code', 'refresh_token'], redirect_uris: ['http://127.0.0.1/cb'], response_types: ['code'],
    },
    {
      client_id: 'native-client', token_endpoint_auth_method: 'none', application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      redirect_uris: ['http://127.0.0.1/callback'], response_types: ['code'],
    },
    ...(mcpResource ? [
      {
        client_id: 'mcp-cc-client', client_secret: 'mcp-cc-secret-value',
        grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
      },
      {
        client_id: 'mcp-pkjwt-client', token_endpoint_auth_method: 'private_key_jwt', jwks: clientJWKS,
        grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
      },
    ] : []),
  ],
  scopes: ['openid', 'offline_access', 'api'],
  clientAuthMethods: ['client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none', 'tls_client_auth'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: true }, // the login and consent pages a test's headless person fills in
    deviceFlow: { enabled: true },
    mTLS: {
      enabled: true,
      tlsClientAuth: true,
      certificateBoundAccessTokens: true,
      getCertificate: peerCertificate,
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn'
        && peerCertificate(ctx)?.subject === expected,
    },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => (mcpOrigin && originOf(resource) === mcpOrigin
        ? { scope: 'mcp:read mcp:write', audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }
        : { scope: 'api', audience: resource, accessTokenFormat: 'opaque' }),
    },
    // Open dynamic registration (no initial access token) and Client ID
    // Metadata Documents (draft-02), in the ProtectedResource variant only.
    registration: { enabled: Boolean(mcpResource) },
    clientIdMetadataDocument: mcpResource ? { enabled: true, ack: 'draft-02' } : { enabled: false },
  },
  // The ProtectedResource variant requires PKCE of every client, public or
  // not (otherwise oidc-provider's default: public clients); and it fetches
  // Client ID Metadata Documents from loopback, where the tests serve them
  // (their server's certificate trusted with NODE_EXTRA_CA_CERTS) and
  // where oidc-provider's guard against server-side request forgery, the
  // dispatcher it passes, would refuse to connect.
  ...(mcpResource ? {
    pkce: { required: () => true },
    fetch: (url, { dispatcher, ...options }) => globalThis.fetch(url, options),
  } : {}),
  ttl: { AccessToken: ttl, ClientCredentials: ttl, RefreshToken: 3600, Grant: 3600 },
  rotateRefreshToken: true,
  // A person's grants get a refresh token whether or not offline_access was
  // asked for (with prompt=consent), and outlive the browser's session.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  cookies: { keys: ['interop-cookie-key-not-secret'] },
});
provider.proxy = false;

function grantStats(ctx) {
  const type = String(ctx.oidc.params?.grant_type ?? 'unknown');
  grants[type] ??= { success: 0, error: 0, pkce_s256: 0, resources: {} };
  return grants[type];
}
provider.on('grant.success', (ctx) => {
  const stats = grantStats(ctx);
  stats.success += 1;
  const resource = String(ctx.oidc.params?.resource ?? '');
  stats.resources[resource] = (stats.resources[resource] ?? 0) + 1;
  const code = ctx.oidc.entities.AuthorizationCode;
  if (code?.codeChallenge && code.codeChallengeMethod === 'S256') {
    stats.pkce_s256 += 1; // the verifier matched, or the grant would have failed
  }
});
provider.on('grant.error', (ctx) => { grantStats(ctx).error += 1; });
provider.on('registration_create.success', (ctx, client) => {
  const {
    client_id: clientId, token_endpoint_auth_method: method, application_type: applicationType,
    grant_types: grantTypes, response_types: responseTypes, redirect_uris: redirectURIs, client_name: clientName,
  } = client.metadata();
  registrations.push({
    client_id: clientId, client_name: clientName, token_endpoint_auth_method: method, application_type: applicationType,
    grant_types: grantTypes, response_types: responseTypes, redirect_uris: redirectURIs,
  });
});
provider.on('registration_create.error', (ctx, err) => {
  registrationErrors.push({ error: err.error, error_description: err.error_description });
});
// RFC 8628's default interval is 5 s; 1 s keeps the device tests short.
provider.on('device_authorization.success', (ctx, body) => { body.interval = 1; });
const callback = provider.callback();

// mintRefreshToken mints a refresh token for clientId, bound to the DPoP
// key whose JWK thumbprint is jkt when given, as an authorization-code
// grant with a DPoP proof would have.
async function mintRefreshToken(clientId, jkt) {
  const client = await provider.Client.find(clientId);
  const grant = new provider.Grant({ accountId: 'user-1', clientId });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const now = Math.floor(Date.now() / 1000);
  const rt = new provider.RefreshToken({
    accountId: 'user-1', client, grantId, scope: 'openid offline_access', gty: 'authorization_code', authTime: now,
    ...(jkt ? { jkt } : {}),
  });
  return rt.save();
}

server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (req.method === 'POST' && url.pathname === '/test/refresh-token') {
      const clientId = url.searchParams.get('client_id') || 'rt-client';
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ refresh_token: await mintRefreshToken(clientId, url.searchParams.get('jkt')) }));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/test/forget-client') {
      await provider.Client.adapter.destroy(url.searchParams.get('client_id'));
      res.end();
      return;
    }
    if (req.method === 'GET' && req.url === '/test/stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        token_calls: tokenCalls, grants, registrations, registration_errors: registrationErrors,
      }));
      return;
    }
    if (req.method === 'POST' && req.url === '/token') {
      tokenCalls += 1;
    }
    callback(req, res);
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});

process.stdout.write(`listening ${port}\n`);
process.stdin.on('end', () => process.exit(0)); // exit with the test
process.stdin.resume();
