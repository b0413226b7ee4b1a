// Package sign owns the signatures of livepatch containers and the trust
// policy that requires them.
//
// A signature is Ed25519ph (RFC 8032, SHA-512 prehash, context
// "ulp container signature v1") over the whole container file with the
// payload of its .ulp.sig section set to zeros; the section holds the
// signer's public key and the signature (see docs/container-format.md).
// Keys are PEM files: PKCS#8 "PRIVATE KEY" and PKIX "PUBLIC KEY", the
// format of `openssl genpkey -algorithm ed25519`.
//
// A Policy is a folder of trusted public keys (*.pub, by default
// /etc/ulp/trusted.d); Policy.Verify accepts a container only when it
// carries a valid signature by one of them.
package sign
