/** The verifier instructions shipped in every evidence pack (audit/VERIFY.md); docs/audit.md says the same at length. */
export function verifierInstructions(keyId: string): string {
  return `# Verifying this evidence offline

You need: this archive, the device's public key (obtained from its owner out of band:
\`sealflow audit pubkey\` prints it with its key id; this pack names key \`${keyId}\`),
and either sealflow or OpenSSL 3 with coreutils.

## With sealflow (any machine, no access to the device)

    sealflow evidence verify --pubkey KEY evidence.tar
    tar -xf evidence.tar audit/trail.jsonl
    sealflow audit verify --pubkey KEY audit/trail.jsonl [--since 2026-01-01T00:00:00Z]
    sealflow attest verify --pubkey KEY attest/report.json

\`evidence verify\` checks the manifest's signature, every file's SHA-256, and runs the other
two. \`audit verify\` exits 1 on any failure and lists gaps (periods it cannot vouch for).

## With OpenSSL and coreutils only

1. The manifest is signed by the key:

       tar -xf evidence.tar
       openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in MANIFEST.json -sigfile MANIFEST.sig

2. Every file is the one listed (SHA-256 in MANIFEST.json, field files[].sha256):

       sha256sum config/effective.json audit/trail.jsonl ...   # compare with MANIFEST.json

3. A signed document (digest, receipt, export seal, attestation report) is \`{"body": …,
   "signature": base64}\`: the signature is Ed25519 over the canonical JSON (RFC 8785: keys
   sorted, no whitespace) of \`body\`. With a JCS tool:

       jq -c .body doc.json | <canonicalize> > body.json
       jq -r .signature doc.json | base64 -d > body.sig
       openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in body.json -sigfile body.sig

4. The event chain: each event line's \`hash\` is SHA-256 of the canonical JSON of
   \`{"v":1,"seq","atMs","kind","fields","prev"}\` (prev: the previous event's hash, hex; 64
   zeros before the first); each digest's \`endHash\` is the hash of its \`lastEventSeq\`
   event and its \`startHash\` the \`endHash\` of the digest before; \`previousDigestHash\` is
   SHA-256 of the previous digest's canonical body.

5. The configuration: \`sha256sum config/effective.json\` equals config/effective.sha256 and
   the \`configHash\` of the trail's newest \`config.loaded\` event.
`;
}
